/**
 * Stop strings over streamed text. Text that might be the start of a stop
 * string is held back until it is clearly not; a match ends the request and
 * the stop string (and anything after it) is never sent.
 */
export class StopChecker {
  private held = '';
  private readonly longest: number;

  constructor(private readonly stops: string[]) {
    this.longest = stops.reduce((m, s) => Math.max(m, s.length), 0);
  }

  /** False when there are no stop strings: text passes straight through. */
  get active(): boolean {
    return this.stops.length > 0;
  }

  /** Adds new text; returns what can be sent now and the stop string if one matched. */
  add(text: string): { send: string; matched?: string } {
    if (this.stops.length === 0) return { send: text };
    const buf = this.held + text;
    let cut = -1;
    let matched: string | undefined;
    for (const s of this.stops) {
      const i = buf.indexOf(s);
      if (i >= 0 && (cut < 0 || i < cut)) {
        cut = i;
        matched = s;
      }
    }
    if (matched !== undefined) {
      this.held = '';
      return { send: buf.slice(0, cut), matched };
    }
    const keep = this.partialSuffix(buf);
    this.held = buf.slice(buf.length - keep);
    return { send: buf.slice(0, buf.length - keep) };
  }

  /** At the end of the request: held text was not a stop string after all. */
  flush(): string {
    const out = this.held;
    this.held = '';
    return out;
  }

  /** Length of the longest suffix of buf that is a proper prefix of a stop string. */
  private partialSuffix(buf: string): number {
    for (let n = Math.min(this.longest - 1, buf.length); n > 0; n--) {
      const tail = buf.slice(buf.length - n);
      if (this.stops.some((s) => s.startsWith(tail))) return n;
    }
    return 0;
  }
}
