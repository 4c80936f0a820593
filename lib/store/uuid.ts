/** UUIDs as 16 bytes on disk and canonical lowercase strings in memory. */
const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(value: string): boolean {
  return UUID_PATTERN.test(value);
}

function nibble(code: number): number {
  // '0'-'9' → 0-9, 'a'-'f' and 'A'-'F' → 10-15 (input is validated, so no other characters).
  return code <= 57 ? code - 48 : (code | 0x20) - 87;
}

/** Writes the 16 bytes of a UUID string (already validated) into `buf` at `at`. */
export function writeUuid(uuid: string, buf: Buffer, at: number): void {
  let j = 0;
  for (let i = 0; i < 16; i++) {
    if (uuid.charCodeAt(j) === 45 /* - */) j++;
    buf[at + i] = (nibble(uuid.charCodeAt(j)) << 4) | nibble(uuid.charCodeAt(j + 1));
    j += 2;
  }
}

export function readUuid(buf: Buffer, at: number): string {
  const hex = buf.toString('hex', at, at + 16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
