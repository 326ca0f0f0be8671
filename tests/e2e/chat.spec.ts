import type { Browser, Page } from '@playwright/test';
import { expectAccessible } from './a11y';
import { expect, signIn, test } from './fixtures';
import { apiCall, unique } from './incidents-helpers';
import { USERS } from './users';

/** A second signed-in browser (its own cookies), failing the test on any console error. */
async function secondBrowser(browser: Browser, baseURL: string, problems: string[]): Promise<Page> {
  const context = await browser.newContext({ baseURL });
  const page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error' && !/401 .*|status of 401/.test(m.text())) problems.push(`second browser: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`second browser: ${e.message}`));
  return page;
}

function log(page: Page) {
  return page.getByRole('log', { name: /^Messages in/ });
}

async function send(page: Page, text: string) {
  const composer = page.getByRole('textbox', { name: /^Message #/ });
  await composer.fill(text);
  await composer.press('Enter');
}

test.describe('chat', () => {
  test('two people talk live: send both ways, edit, delete, typing, threads, unread kept over a reload', async ({ page, browser, baseURL }) => {
    test.setTimeout(300_000);
    const problems: string[] = [];
    const room = `ops-${Date.now().toString(36)}`;

    // Ada makes a public room.
    await signIn(page, USERS.admin.username, USERS.admin.password);
    await expect(page.getByRole('heading', { name: /^Welcome/ })).toBeVisible();
    await page.goto('/chat');
    await expect(page.getByRole('heading', { name: 'Chat', level: 1 })).toBeVisible();
    await expectAccessible(page, 'chat, no room open');
    await page.getByRole('button', { name: 'New room' }).click();
    const dialog = page.getByRole('dialog', { name: 'New room' });
    await expect(dialog.getByLabel(/^Name/)).toBeFocused();
    await expectAccessible(page, 'new room dialog');
    await dialog.getByLabel(/^Name/).fill(room);
    await dialog.getByLabel('Topic').fill('Where the on-call talks');
    await dialog.getByRole('button', { name: 'Create room' }).click();
    await expect(page.getByRole('heading', { name: `# ${room}` })).toBeVisible();
    await expect(page).toHaveURL(/\/chat\/rooms\/[0-9a-f]{32}$/);
    const roomUrl = new URL(page.url()).pathname;
    await send(page, 'Hello **team**');
    await expect(log(page).getByText('Hello team')).toBeVisible();
    await expect(log(page).locator('strong', { hasText: 'team' })).toBeVisible();

    // Max opens it from the list of public rooms, in another browser.
    const max = await secondBrowser(browser, baseURL ?? '', problems);
    await signIn(max, USERS.member.username, USERS.member.password);
    await expect(max.getByRole('heading', { name: /^Welcome/ })).toBeVisible();
    await max.goto('/chat');
    await max.getByRole('link', { name: new RegExp(`^${room}`) }).click();
    await expect(max.getByRole('heading', { name: `# ${room}` })).toBeVisible();
    await expect(log(max).getByText('Hello team')).toBeVisible();

    // Both ways, live; the other side sees the typing first.
    await max.getByRole('textbox', { name: /^Message #/ }).pressSequentially('On it', { delay: 20 });
    await expect(page.getByTestId('typing')).toHaveText('e2e-member is typing…');
    await max.getByRole('textbox', { name: /^Message #/ }).press('Enter');
    await expect(log(page).getByText('On it')).toBeVisible();
    await expect(page.getByTestId('typing')).toHaveText('');
    await send(page, 'Thanks');
    await expect(log(max).getByText('Thanks')).toBeVisible();
    await expect(log(max).getByTestId('chat-message')).toHaveCount(3);

    // Shift+Enter is a new line; the preview shows the Markdown.
    const composer = page.getByRole('textbox', { name: /^Message #/ });
    await composer.fill('Steps:');
    await composer.press('Shift+Enter');
    await composer.pressSequentially('- restart *the* worker');
    await page.getByRole('tab', { name: 'Preview' }).click();
    await expect(page.getByTestId('composer-preview').locator('li em')).toHaveText('the');
    await expectAccessible(page, 'chat room, composer preview');
    await page.getByRole('tab', { name: 'Write' }).click();
    await page.getByRole('textbox', { name: /^Message #/ }).press('Control+Enter');
    await expect(log(max).locator('li', { hasText: 'restart the worker' })).toBeVisible();

    // Edit and delete, seen live by the other side; keyboard: Up/Down through the log, Enter for actions.
    const mine = log(page).getByTestId('chat-message').filter({ hasText: 'Thanks' });
    await mine.focus();
    await page.keyboard.press('ArrowUp');
    await expect(log(page).getByTestId('chat-message').filter({ hasText: 'On it' })).toBeFocused();
    await page.keyboard.press('ArrowDown');
    await expect(mine).toBeFocused();
    await page.keyboard.press('Enter');
    await expect(page.getByRole('menu')).toBeVisible();
    await expectAccessible(page, 'message actions menu');
    await page.getByRole('menuitem', { name: 'Edit' }).click();
    const edit = page.getByRole('textbox', { name: 'Edit message' });
    await edit.fill('Thanks a lot');
    await edit.press('Enter');
    await expect(log(max).getByText('Thanks a lot')).toBeVisible();
    await expect(log(max).getByTestId('chat-message').filter({ hasText: 'Thanks a lot' })).toContainText('(edited)');
    await log(page).getByTestId('chat-message').filter({ hasText: 'Thanks a lot' }).getByRole('button', { name: 'Message actions' }).click();
    await page.getByRole('menuitem', { name: 'Delete' }).click();
    await expect(page.getByRole('dialog', { name: 'Delete this message?' })).toBeVisible();
    await expectAccessible(page, 'delete dialog');
    await page.getByRole('dialog', { name: 'Delete this message?' }).getByRole('button', { name: 'Delete' }).click();
    await expect(log(max).getByText('This message was deleted.')).toBeVisible();
    await expect(log(max).getByText('Thanks a lot')).toHaveCount(0);

    // A thread: Max replies to Ada's first message, Ada sees the reply count and the reply.
    await log(max).getByTestId('chat-message').filter({ hasText: 'Hello team' }).getByRole('button', { name: 'Message actions' }).click();
    await max.getByRole('menuitem', { name: 'Reply in thread' }).click();
    const thread = max.getByRole('dialog', { name: 'Thread' });
    await thread.getByRole('textbox', { name: 'Reply in thread' }).fill('Which team?');
    await thread.getByRole('textbox', { name: 'Reply in thread' }).press('Enter');
    await expect(thread.getByTestId('thread-log').getByText('Which team?')).toBeVisible();
    await max.keyboard.press('Escape');
    await expect(thread).toBeHidden();
    await log(page).getByRole('button', { name: '1 reply' }).click();
    const adaThread = page.getByRole('dialog', { name: 'Thread' });
    await expect(adaThread.getByText('Which team?')).toBeVisible();
    await expectAccessible(page, 'thread panel');
    await page.keyboard.press('Escape');
    await expect(adaThread).toBeHidden();
    await expect(log(page).getByText('Which team?')).toHaveCount(0);

    // Max leaves the room's page; Ada writes twice; the list counts it, and a reload keeps it.
    await max.goto('/chat');
    await send(page, 'One more');
    await send(page, 'And another');
    const link = max.getByRole('link', { name: new RegExp(`^${room}, \\d+ unread`) });
    await expect(link).toHaveAccessibleName(`${room}, 2 unread`);
    await max.reload();
    await expect(max.getByRole('link', { name: `${room}, 2 unread` })).toBeVisible();
    await max.getByRole('link', { name: `${room}, 2 unread` }).click();
    await expect(max.getByRole('button', { name: /Jump to first unread/ })).toBeVisible();
    await expect(max.getByRole('separator', { name: 'New messages' })).toBeVisible();
    await expect(log(max).getByText('And another')).toBeVisible();
    await expect(max.getByRole('link', { name: room, exact: true })).toBeVisible();
    await expectAccessible(max, 'chat room with unread');

    // Ada reloads: the history is the same, in order, each message once.
    await page.goto(roomUrl);
    await expect(log(page).getByText('And another')).toBeVisible();
    const bodies = await log(page).getByTestId('chat-message').allInnerTexts();
    const order = ['Hello team', 'On it', 'This message was deleted.', 'Steps', 'One more', 'And another'];
    const positions = order.map((text) => bodies.findIndex((b) => b.includes(text)));
    expect(positions).toEqual([...positions].sort((a, b) => a - b));
    expect(positions.every((p) => p >= 0)).toBe(true);
    expect(bodies).toHaveLength(order.length);
    await expectAccessible(page, 'chat room');

    await max.context().close();
    expect(problems).toEqual([]);
  });

  test('an incident war room: both open it from the incident, react and share an image live', async ({ page, browser, baseURL }) => {
    test.setTimeout(300_000);
    const problems: string[] = [];
    await signIn(page, USERS.admin.username, USERS.admin.password);
    await expect(page.getByRole('heading', { name: /^Welcome/ })).toBeVisible();
    const title = unique('Checkout down');
    const incident = await apiCall<{ number: number }>(page, 'POST', '/api/v1/incidents', {
      title,
      description: 'Payments fail.',
      severity: 'SEV2',
    });

    // Ada opens the war room from the incident page; it is named after the incident.
    await page.goto(`/incidents/${incident.number}`);
    await page.getByRole('button', { name: 'War room' }).click();
    await expect(page).toHaveURL(/\/chat\/rooms\/[0-9a-f]{32}$/);
    await expect(page.getByRole('heading', { name: `# INC-${incident.number}: ${title}` })).toBeVisible();
    await send(page, 'Rolled back v2.3');
    await expect(log(page).getByText('Rolled back v2.3')).toBeVisible();

    // Max follows the incident page's link to the same room and sees what was said.
    const max = await secondBrowser(browser, baseURL ?? '', problems);
    await signIn(max, USERS.member.username, USERS.member.password);
    await expect(max.getByRole('heading', { name: /^Welcome/ })).toBeVisible();
    await max.goto(`/incidents/${incident.number}`);
    await max.getByRole('link', { name: 'War room' }).click();
    await expect(max.getByRole('heading', { name: `# INC-${incident.number}: ${title}` })).toBeVisible();
    await expect(log(max).getByText('Rolled back v2.3')).toBeVisible();

    // A reaction, seen live on the other side, and taken back.
    const rolledBack = (p: Page) => log(p).getByTestId('chat-message').filter({ hasText: 'Rolled back v2.3' });
    await rolledBack(max).getByRole('button', { name: 'Message actions' }).click();
    await max.getByRole('menuitem', { name: 'React with 👍' }).click();
    await expect(rolledBack(page).getByRole('button', { name: '👍 1' })).toBeVisible();
    await expect(rolledBack(max).getByRole('button', { name: '👍 1' })).toHaveAttribute('aria-pressed', 'true');
    await expectAccessible(page, 'war room with a reaction');
    await rolledBack(max).getByRole('button', { name: '👍 1' }).click();
    await expect(rolledBack(page).getByRole('button', { name: '👍 1' })).toHaveCount(0);

    // Max shares an image: uploaded first, then sent with a message; Ada gets it live.
    const chooser = max.waitForEvent('filechooser');
    await max.getByRole('button', { name: 'Attach files' }).click();
    await (await chooser).setFiles({ name: 'graph.png', mimeType: 'image/png', buffer: Buffer.from(PNG, 'base64') });
    await expect(max.getByRole('group', { name: 'Attached files' }).getByText('graph.png')).toBeVisible();
    await send(max, 'The error graph');
    const shared = log(page).getByTestId('chat-message').filter({ hasText: 'The error graph' });
    await expect(shared.getByRole('link', { name: /^graph\.png/ })).toBeVisible();

    // The incident page now links the room.
    await page.goto(`/incidents/${incident.number}`);
    await expect(page.getByRole('link', { name: 'War room' })).toBeVisible();

    await max.context().close();
    expect(problems).toEqual([]);
  });

  test("a war room's message pinned to the incident's timeline, its link back, and search jumping to a message", async ({ page }) => {
    test.setTimeout(300_000);
    await signIn(page, USERS.admin.username, USERS.admin.password);
    await expect(page.getByRole('heading', { name: /^Welcome/ })).toBeVisible();
    const title = unique('Disk full');
    const incident = await apiCall<{ number: number }>(page, 'POST', '/api/v1/incidents', {
      title,
      description: 'The database volume is full.',
      severity: 'SEV2',
    });
    const word = `zanzibar${Date.now().toString(36)}`;

    await page.goto(`/incidents/${incident.number}`);
    await page.getByRole('button', { name: 'War room' }).click();
    await expect(page.getByRole('heading', { name: `# INC-${incident.number}: ${title}` })).toBeVisible();
    await send(page, `Freed 40 GB on the ${word} volume`);
    await send(page, 'Watching the graphs');
    await expect(log(page).getByText('Watching the graphs')).toBeVisible();

    // Keyboard: to the message, Enter for its actions, the pin.
    const freed = log(page).getByTestId('chat-message').filter({ hasText: 'Freed 40 GB' });
    await freed.focus();
    await page.keyboard.press('Enter');
    await expect(page.getByRole('menu')).toBeVisible();
    await page.getByRole('menuitem', { name: `Pin to INC-${incident.number} timeline` }).click();
    const notice = page.getByTestId('pin-notice');
    await expect(notice).toContainText(`Pinned to the timeline of INC-${incident.number}.`);
    await expect(freed.getByRole('link', { name: `pinned to INC-${incident.number}` })).toBeVisible();
    await expectAccessible(page, 'war room, a message pinned');

    // The incident's timeline has the note, pinned, quoting the message.
    await notice.getByRole('link', { name: `Open INC-${incident.number}` }).click();
    await expect(page).toHaveURL(new RegExp(`/incidents/${incident.number}$`));
    const note = page.getByTestId('timeline-event').filter({ hasText: `Freed 40 GB on the ${word} volume` });
    await expect(note).toHaveAttribute('data-pinned', 'true');
    await expect(note).toContainText('Pinned');

    // Its link goes back to the message in the war room, highlighted.
    await note.getByRole('link', { name: /^message #\d+$/ }).click();
    await expect(page).toHaveURL(/\/chat\/rooms\/[0-9a-f]{32}\?seq=\d+$/);
    const linked = log(page).getByTestId('chat-message').filter({ hasText: 'Freed 40 GB' });
    await expect(linked).toHaveAttribute('aria-current', 'true');
    await expect(linked).toBeFocused();

    // Search finds it by a word of it and jumps there.
    await page.goto('/chat');
    await page.getByRole('link', { name: 'Search' }).click();
    await expect(page.getByRole('heading', { name: 'Search messages', level: 1 })).toBeVisible();
    await page.getByRole('searchbox', { name: /^Words/ }).fill(word);
    await page.getByRole('searchbox', { name: /^Words/ }).press('Enter');
    await expect(page.getByTestId('search-status')).toHaveText('1 message found.');
    const hit = page.getByRole('list', { name: 'Search results' }).getByRole('link');
    await expect(hit).toContainText(`#INC-${incident.number}: ${title}`);
    await expect(hit).toContainText('Ada Admin');
    await expect(hit.locator('mark')).toHaveText(word);
    await expectAccessible(page, 'chat search with a hit');
    await hit.click();
    await expect(page.getByRole('heading', { name: `# INC-${incident.number}: ${title}` })).toBeVisible();
    const found = log(page).getByTestId('chat-message').filter({ hasText: word });
    await expect(found).toHaveAttribute('aria-current', 'true');
    await expect(found).toBeFocused();
    await expectAccessible(page, 'war room opened at a search hit');

    // Back to the search (kept in the address); a -word leaves the message out.
    await page.goBack();
    await expect(page.getByTestId('search-status')).toHaveText('1 message found.');
    await page.getByRole('searchbox', { name: /^Words/ }).fill(`${word} -volume`);
    await page.getByRole('searchbox', { name: /^Words/ }).press('Enter');
    await expect(page.getByTestId('search-status')).toHaveText('No messages found.');
  });

  test('an invite makes a private room appear for the invitee, live', async ({ page, browser, baseURL }) => {
    test.setTimeout(300_000);
    const problems: string[] = [];
    const room = `private-${Date.now().toString(36)}`;

    await signIn(page, USERS.admin.username, USERS.admin.password);
    await expect(page.getByRole('heading', { name: /^Welcome/ })).toBeVisible();
    await page.goto('/chat');
    await page.getByRole('button', { name: 'New room' }).click();
    const dialog = page.getByRole('dialog', { name: 'New room' });
    await dialog.getByLabel(/^Name/).fill(room);
    await dialog.getByRole('radio', { name: /^Private/ }).check();
    await dialog.getByRole('button', { name: 'Create room' }).click();
    await expect(page.getByRole('heading', { name: `# ${room}` })).toBeVisible();

    // Max does not see it.
    const max = await secondBrowser(browser, baseURL ?? '', problems);
    await signIn(max, USERS.member.username, USERS.member.password);
    await expect(max.getByRole('heading', { name: /^Welcome/ })).toBeVisible();
    await max.goto('/chat');
    await expect(max.getByRole('heading', { name: 'Chat', level: 1 })).toBeVisible();
    await expect(max.getByRole('navigation', { name: 'Conversations' })).toBeVisible();
    await expect(max.getByRole('link', { name: new RegExp(`^${room}`) })).toHaveCount(0);

    // Ada invites him from the members list.
    await page.getByRole('button', { name: 'Members (1)' }).click();
    await page.getByRole('button', { name: 'Invite someone' }).click();
    const invite = page.getByRole('dialog', { name: `Invite to #${room}` });
    const person = invite.getByRole('combobox', { name: /^Person/ });
    await expect(person).toBeFocused();
    await expectAccessible(page, 'invite dialog');
    await person.fill('Max');
    await page.getByRole('option', { name: 'Max Member (e2e-member)' }).click();
    await invite.getByRole('button', { name: 'Invite' }).click();
    await expect(invite.getByRole('status')).toHaveText('Max Member was added to the room.');
    await invite.getByRole('button', { name: 'Done' }).click();
    await expect(invite).toBeHidden();
    await expect(page.getByRole('button', { name: 'Members (2)' })).toBeFocused();
    await page.getByRole('button', { name: 'Members (2)' }).click();
    await expect(page.getByTestId('room-member').filter({ hasText: 'Max Member' })).toBeVisible();
    await page.keyboard.press('Escape');

    // Ada writes: the room appears in Max's list without a reload, and he reads it.
    await send(page, 'Welcome Max');
    const link = max.getByRole('link', { name: new RegExp(`^${room}`) });
    await expect(link).toBeVisible();
    await link.click();
    await expect(max.getByRole('heading', { name: `# ${room}` })).toBeVisible();
    await expect(log(max).getByText('Welcome Max')).toBeVisible();
    await expectAccessible(max, 'invited to a private room');

    await max.context().close();
    expect(problems).toEqual([]);
  });
});

/** A 1 x 1 PNG. */
const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==';
