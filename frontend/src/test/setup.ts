import '@testing-library/jest-dom/vitest';
import { cleanup } from '@testing-library/react';
import { afterEach, vi } from 'vitest';
import { setCsrfToken } from '../api/client';
import { setSocketFactory } from '../api/socket';
import { errorStore } from '../errors/errorStore';

// No real socket in unit tests: pages that go live stay on polling unless a test fakes one.
const offline = () => Promise.reject(new Error('no socket in unit tests'));
setSocketFactory(offline);

afterEach(() => {
  cleanup();
  setSocketFactory(offline);
  vi.unstubAllGlobals();
  setCsrfToken(null);
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
