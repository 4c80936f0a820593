export { SegmentLog, type Durability, type SegmentLogOptions, type AppendReceipt, type SegmentInfo, type SealingSegment } from './segment-log.js';
export type { LocatedBatch } from './segment.js';
export type { SegmentSidecar, FileDigest } from './sidecar.js';
