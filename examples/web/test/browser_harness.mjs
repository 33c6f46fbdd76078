// What the headless-Chromium tests share: Debian's Chromium (or KRMX_CHROMIUM) launched by puppeteer-core,
// and a run under a deadline that stops the browser and the server, also when an assertion fails.
import process from 'node:process';
import puppeteer from 'puppeteer-core';
import { runTest, stopServer } from '../../../tests/net/js/harness.mjs';

export const chromium = process.env.KRMX_CHROMIUM ?? '/usr/bin/chromium';

/// Headless Chromium; KRMX_BROWSER_LOG=1 shows its output.
export function launchChromium(extraArgs = []) {
  return puppeteer.launch({
    executablePath: chromium,
    headless: true,
    dumpio: process.env.KRMX_BROWSER_LOG === '1',
    // --no-sandbox: CI containers run as root, where Chromium's sandbox cannot start.
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', ...extraArgs],
  });
}

/// runTest (tests/net/js/harness.mjs) for a test of one server and one browser: `processes()` returns the
/// ones running now, `{ server, browser }` (a test may restart its server); both are stopped at the end or
/// killed at the deadline, and then `cleanup` runs, if given.
export function runBrowserTest(name, { deadlineMs, main, processes, cleanup }) {
  return runTest(name, {
    deadlineMs,
    main,
    kill: () => {
      const { server, browser } = processes();
      server?.child.kill('SIGKILL');
      browser?.process()?.kill('SIGKILL');
    },
    cleanup: async () => {
      const { server, browser } = processes();
      await browser?.close().catch(() => browser?.process()?.kill('SIGKILL'));
      const stopped = await stopServer(server);
      return cleanup ? cleanup(stopped) : undefined;
    },
  });
}
