import { useRef } from 'react';

/**
 * What a screen reader hears about a long-running job, without being flooded: live pages poll
 * every second or two, and a polite live region that changed on every poll would talk
 * non-stop. A message is announced only when the status changes, or when progress crosses the
 * next `step` (10 % by default), never twice the same.
 */
export interface Progress {
  /** A readable status ("Processing", "Completed"). */
  status: string;
  done: number;
  total: number;
  /** Failures so far (included in the message when above zero). */
  failed?: number;
}

export interface AnnouncerState {
  status: string | null;
  /** The last progress step announced (0..1/step), -1 before any. */
  bucket: number;
  message: string;
}

export const INITIAL_ANNOUNCER: AnnouncerState = { status: null, bucket: -1, message: '' };

export function describeProgress({ status, done, total, failed = 0 }: Progress): string {
  const percent = total > 0 ? Math.floor((done / total) * 100) : 0;
  const failures = failed > 0 ? `, ${failed} failed` : '';
  return `${status}: ${done} of ${total} processed (${percent}%)${failures}.`;
}

/**
 * The next state of the announcer after a poll. `message` changes only when there is something
 * worth saying: the first reading, a new status, or progress reaching a further `step`.
 */
export function nextAnnouncement(prev: AnnouncerState, progress: Progress, step = 0.1): AnnouncerState {
  const fraction = progress.total > 0 ? progress.done / progress.total : 0;
  const bucket = Math.floor(fraction / step + 1e-9);
  if (prev.status === progress.status && bucket <= prev.bucket) return prev;
  return { status: progress.status, bucket, message: describeProgress(progress) };
}

/** The current message for a polite live region, throttled by nextAnnouncement. */
export function useProgressAnnouncement(progress: Progress | undefined, step = 0.1): string {
  const state = useRef<AnnouncerState>(INITIAL_ANNOUNCER);
  // eslint-disable-next-line react-hooks/refs -- a pure fold over the polls, read during render
  if (progress) state.current = nextAnnouncement(state.current, progress, step);
  // eslint-disable-next-line react-hooks/refs
  return state.current.message;
}
