/**
 * The segments of a log, in position order: first the sealed segments the catalogue listed when
 * the log was opened, kept as the catalogue's records (segment-catalogue.ts), then the segments
 * found after them on open or created since, as Segment objects.
 *
 * A catalogued segment gets a Segment object only when it is first used (a read), and loses it
 * again when the log closes its files ({@link release}): opening a log of tens of thousands of
 * segments makes no object per segment, and memory for sealed segments stays bounded by the
 * ones in use, not by how many were ever read.
 */
import assert from 'node:assert/strict';
import type { CatalogueRecords } from './segment-catalogue.js';
import path from 'node:path';
import { SUFFIX, segmentName } from './segment-files.js';
import { Segment } from './segment.js';
import type { SegmentSidecar } from './sidecar.js';

/** A segment as listed by {@link SegmentList.infos}. */
export interface SegmentInfo {
  readonly basePosition: number;
  readonly nextPosition: number;
  readonly bytes: number;
  readonly sealed: boolean;
  readonly logFile: string;
}

export class SegmentList {
  /** Objects of the catalogued segments in use, by their index in the catalogue. */
  private readonly catalogueObjects = new Map<number, Segment>();
  private readonly later: Segment[];

  /** `later` holds at least the active segment; it follows on from the catalogued ones. */
  constructor(
    private readonly dir: string,
    private readonly catalogued: CatalogueRecords,
    later: Segment[],
  ) {
    assert(later.length > 0, 'a log has an active segment');
    const end = catalogued.nextPosition;
    assert(end === undefined || later[0]!.basePosition === end, `segment ${later[0]!.basePosition} does not follow on from the catalogue's end ${end}`);
    this.later = later;
  }

  /** Position of the oldest record held. */
  get startPosition(): number {
    return this.catalogued.count > 0 ? this.catalogued.basePositionAt(0) : this.later[0]!.basePosition;
  }

  /** The newest segment (the active one). */
  get last(): Segment {
    return this.later[this.later.length - 1]!;
  }

  push(segment: Segment): void {
    assert(segment.basePosition === this.last.nextPosition);
    this.later.push(segment);
  }

  /** The segment holding `position`: the last one starting at or before it (the first when none does). */
  find(position: number): Segment {
    const later = this.later;
    if (position < later[0]!.basePosition && this.catalogued.count > 0) return this.catalogueObject(this.catalogued.indexOf(position));
    let lo = 0;
    let hi = later.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (later[mid]!.basePosition <= position) lo = mid;
      else hi = mid - 1;
    }
    return later[lo]!;
  }

  /**
   * Forgets the object of a catalogued segment that nothing uses (its files closed, no reader);
   * the next {@link find} makes a new one. Other segments are kept.
   */
  release(segment: Segment): void {
    assert(segment.fd === undefined && segment.readers === 0);
    if (segment.basePosition >= this.later[0]!.basePosition) return;
    const i = this.catalogued.indexOf(segment.basePosition);
    if (this.catalogueObjects.get(i) === segment) this.catalogueObjects.delete(i);
  }

  /** The sidecar of the sealed segment starting at `basePosition` (no object is made for it), or undefined. */
  sidecarOf(basePosition: number): SegmentSidecar | undefined {
    if (this.catalogued.count > 0 && basePosition < this.later[0]!.basePosition) {
      const i = this.catalogued.indexOf(basePosition);
      return this.catalogued.basePositionAt(i) === basePosition ? this.catalogued.sidecarAt(i) : undefined;
    }
    const segment = this.find(basePosition);
    return segment.basePosition === basePosition ? segment.sidecar : undefined;
  }

  /** Every Segment object in use (those that may hold files open). */
  *objects(): Iterable<Segment> {
    yield* this.catalogueObjects.values();
    yield* this.later;
  }

  /** Every segment, oldest first. */
  infos(): SegmentInfo[] {
    const infos: SegmentInfo[] = [];
    // The directory joined once (as path.join would join it to any plain name): a path join per
    // segment costs more than the rest of its info.
    const prefix = path.join(this.dir, '_').slice(0, -1);
    for (let i = 0; i < this.catalogued.count; i++) {
      const basePosition = this.catalogued.basePositionAt(i);
      const logFile = prefix + segmentName(basePosition) + SUFFIX.log;
      infos.push({ basePosition, nextPosition: this.catalogued.nextPositionAt(i), bytes: this.catalogued.dataBytesAt(i), sealed: true, logFile });
    }
    for (const s of this.later) infos.push({ basePosition: s.basePosition, nextPosition: s.committedEnd, bytes: s.committedBytes, sealed: s.sealed, logFile: s.logFile });
    return infos;
  }

  private catalogueObject(i: number): Segment {
    let segment = this.catalogueObjects.get(i);
    if (segment === undefined) {
      segment = Segment.sealedBy(this.dir, this.catalogued.sidecarAt(i));
      this.catalogueObjects.set(i, segment);
    }
    return segment;
  }
}
