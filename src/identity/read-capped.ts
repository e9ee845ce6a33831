/**
 * Reads an HTTP response body from a party keyhold does not control (a container registry, an
 * identity provider), failing as soon as it passes `max` bytes: never buffering more, and
 * cancelling the rest. `tooLarge` makes the caller's own error.
 */
export async function readCapped(response: Response, max: number, tooLarge: (detail: string) => Error): Promise<Buffer> {
  const declared = Number(response.headers.get('content-length') ?? 'NaN');
  if (declared > max) {
    await response.body?.cancel().catch(() => undefined);
    throw tooLarge(`${declared} bytes`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  if (response.body) {
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      size += chunk.length;
      if (size > max) {
        await response.body.cancel().catch(() => undefined);
        throw tooLarge(`over ${max} bytes`);
      }
      chunks.push(Buffer.from(chunk));
    }
  }
  return Buffer.concat(chunks);
}
