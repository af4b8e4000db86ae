/**
 * Where "now" falls in a quota's window: the bucket a charge goes in, the oldest bucket still counted,
 * and when the window (or its oldest slice) gives back what it holds.
 *
 * Calendar windows (daily, weekly from Monday, monthly) start at local midnight in a configured IANA time
 * zone; a clock computes its window once and keeps it until the window ends, so the request path does a
 * comparison, not date arithmetic. Rolling windows are cut into ROLLING_SLICES slices: what was spent
 * leaves the window one slice at a time. Hand-written on Intl, which Node ships: a time-zone library
 * would be a dependency for four functions.
 */

export type CalendarWindow = 'daily' | 'weekly' | 'monthly';
export type WindowKind = 'minute' | CalendarWindow | 'rolling';

export interface WindowPosition {
  bucket: number;
  from: number;
  /** Epoch ms when the window (rolling: its oldest slice) gives back what it holds. */
  resetAt: number;
  /** How long a counter charged now must be kept. */
  ttlMs: number;
}

export const ROLLING_SLICES = 60;
const MINUTE = 60_000;
const DAY = 86_400_000;

export interface WindowClock {
  /** Names the window in counter names: charges under different windows never share a counter. */
  readonly id: string;
  at(now: number): WindowPosition;
}

export function windowClock(kind: WindowKind, opts: { timeZone?: string; periodMs?: number } = {}): WindowClock {
  if (kind === 'minute') return fixedClock('minute', MINUTE);
  if (kind === 'rolling') return rollingClock(opts.periodMs ?? DAY);
  return new CalendarClock(kind, opts.timeZone ?? 'UTC');
}

function fixedClock(id: string, length: number): WindowClock {
  return {
    id,
    at(now) {
      const bucket = Math.floor(now / length);
      return { bucket, from: bucket, resetAt: (bucket + 1) * length, ttlMs: 2 * length };
    },
  };
}

function rollingClock(periodMs: number): WindowClock {
  const slice = Math.max(1000, Math.ceil(periodMs / ROLLING_SLICES));
  const slices = Math.ceil(periodMs / slice);
  return {
    id: `rolling${periodMs}`,
    at(now) {
      const bucket = Math.floor(now / slice);
      return { bucket, from: bucket - slices + 1, resetAt: (bucket + 1) * slice, ttlMs: periodMs + 2 * slice };
    },
  };
}

class CalendarClock implements WindowClock {
  readonly id: string;
  private readonly kind: CalendarWindow;
  private readonly zone: Intl.DateTimeFormat;
  private start = 0;
  private end = 0;

  constructor(kind: CalendarWindow, timeZone: string) {
    this.kind = kind;
    this.id = kind;
    this.zone = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
      weekday: 'short',
    });
  }

  at(now: number): WindowPosition {
    if (now < this.start || now >= this.end) this.locate(now);
    // Buckets in seconds: a window's start, the same number on every instance.
    const bucket = this.start / 1000;
    return { bucket, from: bucket, resetAt: this.end, ttlMs: this.end - now + DAY };
  }

  private locate(now: number): void {
    const local = this.wallClock(now);
    let { year, month, day } = local;
    if (this.kind === 'weekly') day -= (local.weekday + 6) % 7; // back to Monday
    if (this.kind === 'monthly') day = 1;
    this.start = this.midnight(year, month, day);
    if (this.kind === 'daily') day += 1;
    else if (this.kind === 'weekly') day += 7;
    else month += 1;
    this.end = this.midnight(year, month, day);
  }

  /** The instant of local midnight on a date (Date.UTC normalises day 0, day 32, month 13). */
  private midnight(year: number, month: number, day: number): number {
    const wanted = Date.UTC(year, month - 1, day);
    let guess = wanted;
    // The zone's offset at the guess, twice: the second pass lands right across a DST change.
    for (let i = 0; i < 2; i++) guess = wanted - this.offset(guess);
    return guess;
  }

  /** Local wall-clock time minus UTC at an instant, in ms. */
  private offset(at: number): number {
    const w = this.wallClock(at);
    return Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second) - Math.floor(at / 1000) * 1000;
  }

  private wallClock(at: number) {
    const parts: Record<string, string> = {};
    for (const part of this.zone.formatToParts(at)) parts[part.type] = part.value;
    return {
      year: Number(parts.year),
      month: Number(parts.month),
      day: Number(parts.day),
      hour: Number(parts.hour),
      minute: Number(parts.minute),
      second: Number(parts.second),
      weekday: WEEKDAYS.indexOf(parts.weekday),
    };
  }
}

const WEEKDAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
