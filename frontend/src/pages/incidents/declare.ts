import { useCallback } from 'react';

/**
 * The "declare incident" dialog lives in the shell (DeclareIncidentAction, in the header of every
 * page); anything else opens it through this event, so pages need not know where it is.
 */
export const DECLARE_EVENT = 'opsdeck:declare-incident';

/** The keyboard shortcut, as `aria-keyshortcuts` spells it. Modifier keys on purpose: a
 * single-letter shortcut would fire while people type (WCAG 2.1.4). */
export const DECLARE_SHORTCUT_LABEL = 'Alt+Shift+D';

export function isDeclareShortcut(event: Pick<KeyboardEvent, 'altKey' | 'shiftKey' | 'ctrlKey' | 'metaKey' | 'code' | 'repeat'>): boolean {
  // `code`, not `key`: with Alt (Option on a Mac) held, the key's character changes.
  return event.altKey && event.shiftKey && !event.ctrlKey && !event.metaKey && !event.repeat && event.code === 'KeyD';
}

export function openDeclareDialog(): void {
  window.dispatchEvent(new Event(DECLARE_EVENT));
}

export function useDeclareIncident(): () => void {
  return useCallback(() => openDeclareDialog(), []);
}
