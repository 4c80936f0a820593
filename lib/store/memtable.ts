/**
 * The in-memory part of the stream index: the streams' events appended since the last flush to
 * the index database (index-db.ts), including appends not yet acknowledged. Bounded by the
 * number of events it holds, not by the number of streams in the store: the stream index
 * freezes it and flushes it to LMDB every `indexCheckpointEvents` events.
 *
 * A memtable covers the contiguous positions [startPosition, endPosition) of the log: every
 * event appended in that range is in it, so a flush can record `endPosition` as indexed.
 *
 * Memory: a map entry per stream (its id string is the caller's) and a few typed-array slots;
 * 36 bytes per event in typed arrays (position, batch offset, segment base, the next event of
 * the same stream, the event id). No object per stream or per event, so 65,536 one-event
 * streams cost about 6 MB rather than the 70 MB that an object and three arrays each would.
 */
import assert from 'node:assert/strict';
import type { IndexHead, IndexRun } from './index-db.js';
import type { StreamPart } from './stream-part.js';
import { readUuid, writeUuid } from './uuid.js';

const INITIAL_CAPACITY = 1024;

export class Memtable {
  /** Stream id → stream slot. */
  private readonly slots = new Map<string, number>();
  // Per stream slot.
  private firstRevisions = new Float64Array(INITIAL_CAPACITY);
  private counts = new Uint32Array(INITIAL_CAPACITY);
  private firstEvents = new Int32Array(INITIAL_CAPACITY);
  private lastEvents = new Int32Array(INITIAL_CAPACITY);
  // Per event, in position order.
  private positions = new Float64Array(INITIAL_CAPACITY);
  private batchOffsets = new Uint32Array(INITIAL_CAPACITY);
  private segmentBases = new Float64Array(INITIAL_CAPACITY);
  /** Index of the stream's next event, or −1. */
  private nexts = new Int32Array(INITIAL_CAPACITY);
  private eventIds = Buffer.alloc(INITIAL_CAPACITY * 16);
  events = 0;
  endPosition: number;

  constructor(readonly startPosition: number) {
    this.endPosition = startPosition;
  }

  /** Records one event; events come in position order, each stream's in revision order. */
  add(streamId: string, revision: number, position: number, segmentBase: number, batchOffset: number, eventId: string): void {
    assert(position === this.endPosition, `memtable: position ${position} does not follow ${this.endPosition - 1}`);
    const e = this.events;
    if (e === this.positions.length) this.growEvents();
    let slot = this.slots.get(streamId);
    if (slot === undefined) {
      slot = this.slots.size;
      if (slot === this.counts.length) this.growStreams();
      this.slots.set(streamId, slot);
      this.firstRevisions[slot] = revision;
      this.counts[slot] = 0;
      this.firstEvents[slot] = e;
    } else {
      this.nexts[this.lastEvents[slot]!] = e;
    }
    assert(revision === this.firstRevisions[slot]! + this.counts[slot]!, `stream ${streamId}: revision ${revision} does not follow ${this.firstRevisions[slot]! + this.counts[slot]! - 1}`);
    this.counts[slot]!++;
    this.lastEvents[slot] = e;
    this.positions[e] = position;
    this.batchOffsets[e] = batchOffset;
    this.segmentBases[e] = segmentBase;
    this.nexts[e] = -1;
    writeUuid(eventId, this.eventIds, e * 16);
    this.events++;
    this.endPosition = position + 1;
  }

  head(streamId: string): IndexHead | undefined {
    const slot = this.slots.get(streamId);
    if (slot === undefined) return undefined;
    const last = this.lastEvents[slot]!;
    return { revision: this.firstRevisions[slot]! + this.counts[slot]! - 1, position: this.positions[last]!, lastEventId: readUuid(this.eventIds, last * 16) };
  }

  /** The part holding `revision` of the stream (its events in that segment), or undefined when this memtable does not hold it. */
  partAt(streamId: string, revision: number): StreamPart | undefined {
    const slot = this.slots.get(streamId);
    if (slot === undefined) return undefined;
    const k = revision - this.firstRevisions[slot]!;
    if (k < 0 || k >= this.counts[slot]!) return undefined;
    const events = this.eventsOf(slot);
    const segmentBase = this.segmentBases[events[k]!]!;
    let lo = k;
    let hi = k;
    while (lo > 0 && this.segmentBases[events[lo - 1]!] === segmentBase) lo--;
    while (hi + 1 < events.length && this.segmentBases[events[hi + 1]!] === segmentBase) hi++;
    const chosen = events.slice(lo, hi + 1);
    const positions = Array.from(chosen, (e) => this.positions[e]!);
    const batchOffsets = Array.from(chosen, (e) => this.batchOffsets[e]!);
    return { segmentBase, firstRevision: this.firstRevisions[slot]! + lo, count: chosen.length, positionAt: (i) => positions[i]!, batchOffsetAt: (i) => batchOffsets[i]! };
  }

  /** Every stream's events, for a flush. The run handed out is valid until the iteration moves on. */
  *runs(): IterableIterator<[string, IndexRun]> {
    const table = this;
    let events: Int32Array = new Int32Array(0);
    let slot = 0;
    const run: IndexRun = {
      get firstRevision() {
        return table.firstRevisions[slot]!;
      },
      get count() {
        return table.counts[slot]!;
      },
      get lastEventId() {
        return readUuid(table.eventIds, table.lastEvents[slot]! * 16);
      },
      positionAt: (i) => this.positions[events[i]!]!,
      batchOffsetAt: (i) => this.batchOffsets[events[i]!]!,
      segmentBaseAt: (i) => this.segmentBases[events[i]!]!,
    };
    let scratch = new Int32Array(64);
    for (const [streamId, s] of this.slots) {
      slot = s;
      if (this.counts[s]! > scratch.length) scratch = new Int32Array(this.counts[s]! * 2);
      events = this.eventsOf(s, scratch);
      yield [streamId, run];
    }
  }

  /** The event indexes of a stream slot, in revision order (in `into` when given, else a new array). */
  private eventsOf(slot: number, into = new Int32Array(this.counts[slot]!)): Int32Array {
    const events = into.subarray(0, this.counts[slot]!);
    for (let i = 0, e = this.firstEvents[slot]!; i < events.length; i++, e = this.nexts[e]!) events[i] = e;
    return events;
  }

  private growStreams(): void {
    const n = this.counts.length * 2;
    this.firstRevisions = widen(this.firstRevisions, new Float64Array(n));
    this.counts = widen(this.counts, new Uint32Array(n));
    this.firstEvents = widen(this.firstEvents, new Int32Array(n));
    this.lastEvents = widen(this.lastEvents, new Int32Array(n));
  }

  private growEvents(): void {
    const n = this.positions.length * 2;
    this.positions = widen(this.positions, new Float64Array(n));
    this.batchOffsets = widen(this.batchOffsets, new Uint32Array(n));
    this.segmentBases = widen(this.segmentBases, new Float64Array(n));
    this.nexts = widen(this.nexts, new Int32Array(n));
    const eventIds = Buffer.alloc(n * 16);
    this.eventIds.copy(eventIds);
    this.eventIds = eventIds;
  }
}

function widen<T extends Float64Array | Uint32Array | Int32Array>(from: T, to: T): T {
  to.set(from);
  return to;
}
