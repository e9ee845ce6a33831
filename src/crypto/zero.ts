/** Overwrites key material once it is no longer needed, so it does not linger in the heap. */
export function zeroize(...buffers: Array<Buffer | undefined | null>): void {
  for (const buffer of buffers) buffer?.fill(0);
}
