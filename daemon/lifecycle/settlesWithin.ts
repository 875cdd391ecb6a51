/**
 * Shutdown's one waiting rule: wait for some work to finish, but never longer than the drain
 * timeout. Resolves true when `work` settled (fulfilled or rejected: either way it is over)
 * within `timeoutMs`, false when the time ran out first. Never rejects, and leaves no timer.
 */
export async function settlesWithin(work: Promise<unknown>, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  try {
    return await Promise.race([work.then(() => true, () => true), timedOut]);
  } finally {
    clearTimeout(timer);
  }
}
