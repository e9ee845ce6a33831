/** Byte-level tampering for the tests that check every ciphertext, signature and record is authenticated. */

/**
 * A copy of `buf` with one bit inverted. Bits are counted as they are sent: bit 0 is the most
 * significant bit of byte 0, bit 8 the most significant of byte 1, so byte `b`'s least
 * significant bit is `b * 8 + 7`. A bit outside the buffer is a mistake in the test: it throws.
 */
export function flipBit(buf: Buffer, bit: number): Buffer {
  if (!Number.isInteger(bit) || bit < 0 || bit >= buf.length * 8) throw new RangeError(`bit ${bit} is outside a ${buf.length}-byte buffer`);
  const out = Buffer.from(buf);
  out[bit >> 3] = (out[bit >> 3] as number) ^ (0x80 >> (bit & 7));
  return out;
}
