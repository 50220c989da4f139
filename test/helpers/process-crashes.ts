import { after, before } from 'node:test';

/** One error that reached a process-level handler. */
export interface ProcessCrash {
  kind: 'uncaughtException' | 'unhandledRejection';
  error: unknown;
}

/**
 * Records what reaches `uncaughtException` and `unhandledRejection` while the calling suite (or file) runs, so that
 * its tests can FAIL on it by asserting the list is empty: without the listeners, such an error would end the test
 * process instead of failing one test. Nothing is hidden: every test that uses it asserts the list.
 */
export function recordProcessCrashes(): ProcessCrash[] {
  const crashes: ProcessCrash[] = [];
  const onRejection = (error: unknown) => crashes.push({ kind: 'unhandledRejection', error });
  const onException = (error: unknown) => crashes.push({ kind: 'uncaughtException', error });
  before(() => {
    process.on('unhandledRejection', onRejection);
    process.on('uncaughtException', onException);
  });
  after(() => {
    process.off('unhandledRejection', onRejection);
    process.off('uncaughtException', onException);
  });
  return crashes;
}
