import '@testing-library/jest-dom/vitest';
import { cleanup, configure } from '@testing-library/react';
import { afterEach, vi } from 'vitest';
import { setCsrfToken } from '../api/client';
import { setSocketFactory } from '../api/socket';
import { errorStore } from '../errors/errorStore';

// Pages are lazy chunks: on a loaded 2-core machine the first render of one can take longer
// than testing-library's default 1 s wait for `findBy*`, which failed tests at random. Waiting
// longer changes no assertion: a page that never renders still fails.
configure({ asyncUtilTimeout: 5000 });

// No real socket in unit tests: pages that go live stay on polling unless a test fakes one.
const offline = () => Promise.reject(new Error('no socket in unit tests'));
setSocketFactory(offline);

afterEach(() => {
  cleanup();
  setSocketFactory(offline);
  vi.unstubAllGlobals();
  setCsrfToken(null);
  document.cookie = 'opsdeck_csrf=; path=/; expires=Thu, 01 Jan 1970 00:00:00 GMT';
  errorStore.clear();
});

// jsdom lacks these; Mantine reads them.
if (!window.matchMedia) {
  Object.defineProperty(window, 'matchMedia', {
    writable: true,
    value: (query: string) => ({
      matches: false,
      media: query,
      onchange: null,
      addListener: () => {},
      removeListener: () => {},
      addEventListener: () => {},
      removeEventListener: () => {},
      dispatchEvent: () => false,
    }),
  });
}

class ResizeObserverStub {
  observe() {}
  unobserve() {}
  disconnect() {}
}
window.ResizeObserver ??= ResizeObserverStub as unknown as typeof ResizeObserver;
window.HTMLElement.prototype.scrollIntoView ??= function scrollIntoView() {};

// Mantine's autosizing Textarea listens for web fonts loading.
if (!('fonts' in document)) {
  Object.defineProperty(document, 'fonts', {
    value: { addEventListener: () => {}, removeEventListener: () => {} },
  });
}
