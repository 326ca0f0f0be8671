import type { Locator, Page } from '@playwright/test';
import { expectAccessible } from './a11y';
import { expect, test } from './fixtures';
import { makePng } from './image-server';
import { USERS } from './users';

/**
 * The main flows with the keyboard alone: Tab / Shift+Tab, Enter, Space, arrow keys and Escape;
 * no click, no fill() of a field that was not reached with Tab. The one exception is the file
 * picker: Playwright cannot drive the operating system's file dialog, so the file input is
 * reached with Tab and its files are set with setInputFiles() on the focused input.
 */

/** Presses Tab until `target` has the focus, then checks that the focus is visible on it. */
async function tabTo(page: Page, target: Locator, max = 40): Promise<void> {
  for (let i = 0; i < max; i++) {
    await page.keyboard.press('Tab');
    if (await target.evaluate((el) => el === document.activeElement).catch(() => false)) {
      await expectVisibleFocus(target);
      return;
    }
  }
  throw new Error(`${String(target)} was not reached with ${max} presses of Tab`);
}

/** A focus indicator is drawn: an outline or a box shadow on the element or its label/area. */
async function expectVisibleFocus(target: Locator): Promise<void> {
  const drawn = await target.evaluate((el) => {
    const visible = (node: Element | null) => {
      if (!node) return false;
      const style = getComputedStyle(node);
      const outline = style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0;
      return outline || style.boxShadow !== 'none';
    };
    // A visually hidden file input shows its focus on the area around it, the input of a
    // compound field (password with its eye button) on the field's frame.
    return visible(el) || visible(el.closest('.file-drop')) || visible(el.closest('.mantine-Input-input'));
  });
  expect(drawn, `${String(target)} shows no focus indicator`).toBe(true);
}

async function keyboardSignIn(page: Page, username: string, password: string): Promise<void> {
  await page.goto('/signin');
  const field = page.getByLabel('Username or e-mail');
  // The field has the focus when the page opens; typing goes straight in.
  await expect(field).toBeFocused();
  await page.keyboard.type(username);
  await tabTo(page, page.getByLabel(/^Password/));
  await page.keyboard.type(password);
  await page.keyboard.press('Enter');
  await expect(page.getByRole('heading', { name: /^Welcome/ })).toBeVisible();
}

test('keyboard only: sign in, skip to content, submit a batch, open it, sign out', async ({ page }) => {
  test.setTimeout(120_000);
  await keyboardSignIn(page, USERS.member.username, USERS.member.password);

  // The skip link is the first stop, visible when focused, and lands on the main content.
  await page.reload();
  await expect(page.getByRole('heading', { name: /^Welcome/ })).toBeVisible();
  await page.keyboard.press('Tab');
  const skip = page.getByRole('link', { name: 'Skip to main content' });
  await expect(skip).toBeFocused();
  await expect(skip).toBeInViewport();
  await page.keyboard.press('Enter');
  await expect(page.locator('#main')).toBeFocused();

  // Navigation: Images, then New batch.
  await tabTo(page, page.getByRole('navigation').getByRole('link', { name: 'Images' }));
  await page.keyboard.press('Enter');
  await expect(page.getByRole('heading', { name: 'Images', exact: true })).toBeVisible();
  await tabTo(page, page.getByRole('link', { name: 'New batch' }));
  await page.keyboard.press('Enter');
  await expect(page.getByRole('heading', { name: 'New image batch' })).toBeVisible();

  // Upload image files: the source switch takes arrow keys, the file input is reached with Tab.
  await tabTo(page, page.getByRole('radio', { name: 'CSV of image URLs' }));
  await page.keyboard.press('ArrowRight');
  await expect(page.getByRole('radio', { name: 'Upload image files' })).toBeChecked();
  const input = page.getByLabel('Choose image files');
  await tabTo(page, input);
  await page.locator(':focus').setInputFiles([
    { name: 'keyboard.png', mimeType: 'image/png', buffer: makePng(16, 16, [20, 120, 200]) },
  ]);
  await expect(page.getByTestId('chosen-images').getByRole('listitem')).toHaveCount(1);
  await tabTo(page, page.getByRole('button', { name: 'Start batch' }));
  await page.keyboard.press('Enter');
  await expect(page).toHaveURL(/\/images\/batches\/[0-9a-f]{32}$/);
  const requestId = /([0-9a-f]{32})$/.exec(page.url())?.[1] ?? '';
  await expect(page.getByTestId('batch-status')).toHaveText('Completed', { timeout: 90_000 });
  // The live region said where the batch got to, politely.
  await expect(page.getByTestId('batch-announcer')).toHaveText('Completed: 1 of 1 processed (100%).');
  await expect(page.getByTestId('batch-announcer')).toHaveAttribute('aria-live', 'polite');

  // Back to the list and open the batch from it.
  await tabTo(page, page.getByRole('link', { name: '← All batches' }));
  await page.keyboard.press('Enter');
  await expect(page.getByRole('heading', { name: 'Images', exact: true })).toBeVisible();
  await tabTo(page, page.getByRole('link', { name: `Batch ${requestId}` }));
  await page.keyboard.press('Enter');
  await expect(page.getByRole('heading', { name: `Batch ${requestId}` })).toBeVisible();

  // Sign out through the account menu: Enter opens it, arrow keys move through it.
  const menuButton = page.getByRole('button', { name: /Account menu/ });
  await tabTo(page, menuButton, 5).catch(async () => {
    // The header comes before the content: go back up with Shift+Tab.
    for (let i = 0; i < 40 && !(await menuButton.evaluate((el) => el === document.activeElement)); i++) {
      await page.keyboard.press('Shift+Tab');
    }
  });
  await expect(menuButton).toBeFocused();
  await expectVisibleFocus(menuButton);
  await page.keyboard.press('Enter');
  const settings = page.getByRole('menuitem', { name: 'Account settings' });
  const signOutItem = page.getByRole('menuitem', { name: 'Sign out' });
  await expect(signOutItem).toBeVisible();
  // The focus is in the menu (on its first item, or on the menu until an arrow key is pressed).
  await expect
    .poll(() => page.evaluate(() => !!document.activeElement?.closest('[role="menu"]')))
    .toBe(true);
  for (let i = 0; i < 3 && !(await settings.evaluate((el) => el === document.activeElement)); i++) {
    await page.keyboard.press('ArrowDown');
  }
  await expect(settings).toBeFocused();
  await expectVisibleFocus(settings);
  await page.keyboard.press('ArrowDown');
  await expect(signOutItem).toBeFocused();
  await page.keyboard.press('ArrowUp');
  await expect(settings).toBeFocused();
  await page.keyboard.press('ArrowDown');
  await page.keyboard.press('Enter');
  await expect(page.getByRole('heading', { name: 'Sign in to OpsDeck' })).toBeVisible();
  await expect(page.getByText('You have signed out.')).toBeVisible();
});

test('keyboard only: a dialog traps the focus and gives it back', async ({ page }) => {
  await keyboardSignIn(page, USERS.admin.username, USERS.admin.password);
  await tabTo(page, page.getByRole('navigation').getByRole('link', { name: 'Users' }));
  await page.keyboard.press('Enter');
  await expect(page.getByRole('heading', { name: 'Users' })).toBeVisible();

  const opener = page.getByRole('button', { name: 'Create user' });
  await tabTo(page, opener);
  await page.keyboard.press('Enter');
  const dialog = page.getByRole('dialog', { name: 'Create a user' });
  await expect(dialog).toBeVisible();
  await expect(dialog.getByLabel('Username')).toBeFocused();
  await expectAccessible(page, 'create-user dialog');
  // Tab and Shift+Tab cycle inside the dialog, never behind it.
  for (let i = 0; i < 15; i++) {
    await page.keyboard.press('Tab');
    expect(await dialog.evaluate((el) => el.contains(document.activeElement))).toBe(true);
  }
  for (let i = 0; i < 15; i++) {
    await page.keyboard.press('Shift+Tab');
    expect(await dialog.evaluate((el) => el.contains(document.activeElement))).toBe(true);
  }
  await page.keyboard.press('Escape');
  await expect(dialog).toBeHidden();
  await expect(opener).toBeFocused();
});
