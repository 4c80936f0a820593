/** UUIDs as 16 bytes on disk and canonical lowercase strings in memory. */
const HEX: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(value: string): boolean {
  return UUID_PATTERN.test(value);
}

/** Writes the 16 bytes of a UUID string (already validated) into `buf` at `at`. */
export function writeUuid(uuid: string, buf: Buffer, at: number): void {
  let j = 0;
  for (let i = 0; i < 16; i++) {
    if (uuid.charCodeAt(j) === 45 /* - */) j++;
    buf[at + i] = parseInt(uuid.slice(j, j + 2), 16);
    j += 2;
  }
}

export function readUuid(buf: Buffer, at: number): string {
  const h = (i: number): string => HEX[buf[at + i]!]!;
  return (
    h(0) + h(1) + h(2) + h(3) + '-' + h(4) + h(5) + '-' + h(6) + h(7) + '-' + h(8) + h(9) + '-' +
    h(10) + h(11) + h(12) + h(13) + h(14) + h(15)
  );
}
