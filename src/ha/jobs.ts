/**
 * Background work that must run on exactly one replica (the token sweep, the revocation of a
 * deleted pod's tokens, later a rekey): each is a unit that can be started and stopped, and this
 * registry starts them all while this replica leads and stops them when it stops leading.
 */
import type { Leadership } from './leader.js';

export interface BackgroundJob {
  readonly name: string;
  /** Begins the work; must not throw for a transient failure (log it and retry on its own schedule). */
  start(): void;
  /** Stops the work; anything still in flight may finish but schedules nothing new. */
  stop(): void;
}

export class BackgroundJobs {
  readonly #jobs: BackgroundJob[] = [];
  #running = false;
  #unsubscribe: (() => void) | undefined;
  /** How many times this replica became leader (for metrics). */
  elections = 0;

  constructor(private readonly leadership: Leadership, private readonly warn: (message: string) => void) {}

  /** Adds a job; it starts at once if this replica is leading. */
  register(job: BackgroundJob): void {
    this.#jobs.push(job);
    if (this.#running) this.#safely(job, 'start');
  }

  get names(): string[] {
    return this.#jobs.map((j) => j.name);
  }

  get running(): boolean {
    return this.#running;
  }

  /** Follows leadership from now on. */
  follow(): void {
    this.#unsubscribe = this.leadership.onChange((leader) => this.#apply(leader));
    this.#apply(this.leadership.isLeader);
  }

  #apply(leader: boolean): void {
    if (leader === this.#running) return;
    this.#running = leader;
    if (leader) this.elections++;
    for (const job of this.#jobs) this.#safely(job, leader ? 'start' : 'stop');
  }

  #safely(job: BackgroundJob, action: 'start' | 'stop'): void {
    try {
      job[action]();
    } catch (err) {
      this.warn(`background job ${job.name}: ${action} failed: ${(err as Error).message}`);
    }
  }

  /** Stops every job and stops following leadership. */
  stop(): void {
    this.#unsubscribe?.();
    this.#apply(false);
  }
}

/** A job that runs `work` now and then every `intervalMs` while started. */
export function intervalJob(name: string, intervalMs: number, work: () => Promise<unknown>, warn: (message: string) => void): BackgroundJob {
  let timer: NodeJS.Timeout | undefined;
  let started = false;
  const run = () => void work().catch((err: unknown) => started && warn(`${name} failed: ${(err as Error).message}`));
  return {
    name,
    start() {
      if (started) return;
      started = true;
      timer = setInterval(run, intervalMs);
      timer.unref();
      run();
    },
    stop() {
      started = false;
      clearInterval(timer);
    },
  };
}
