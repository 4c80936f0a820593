/**
 * A stream's events within one segment, as the stream index hands them to readers: consecutive
 * revisions from `firstRevision`, each with its position and the byte offset of its batch.
 */
export interface StreamPart {
  readonly segmentBase: number;
  readonly firstRevision: number;
  readonly count: number;
  positionAt(i: number): number;
  batchOffsetAt(i: number): number;
}
