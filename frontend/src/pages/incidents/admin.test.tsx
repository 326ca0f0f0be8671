import type { ReactNode } from 'react';
import { MemoryRouter } from 'react-router';
import { MantineProvider } from '@mantine/core';
import { QueryClientProvider } from '@tanstack/react-query';
import { configure, render, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';
import type { Category, FollowUp, Incident, Integration, Tag } from '../../api/incidents';
import { createQueryClient } from '../../api/query';
import { AuthProvider, useAuth } from '../../auth/AuthContext';
import { apiError, makeUser, mockApi, renderApp, session } from '../../test/utils';
import { theme } from '../../theme';
import { canMoveFollowUp, IncidentFollowUps } from './IncidentFollowUps';
import { rowsFromSeverityMap } from './severityMap';

const admin = makeUser({ id: 'u-admin', username: 'root', display_name: 'Root Admin', role: 'admin' });
const member = makeUser({ id: 'u-member', username: 'mia', display_name: 'Mia Member' });

// The first test to open a page loads its lazy chunk, slow on a busy machine.
configure({ asyncUtilTimeout: 5000 });

function integration(overrides: Partial<Integration> = {}): Integration {
  return {
    id: 'a'.repeat(32),
    name: 'prod alertmanager',
    kind: 'alertmanager',
    url: '/api/v1/incidents/integrations/alertmanager',
    token_prefix: 'opi_12345678',
    severity_label: 'severity',
    severity_map: { critical: 'SEV1', warning: 'SEV3' },
    default_severity: 'SEV3',
    resolve_on_recovery: false,
    category: null,
    created_at: '2026-01-02T03:04:05Z',
    last_used_at: null,
    revoked_at: null,
    active: true,
    ...overrides,
  };
}

function followUp(overrides: Partial<FollowUp> = {}): FollowUp {
  return {
    id: 'f'.repeat(32),
    incident_number: 7,
    incident_key: 'INC-7',
    incident_title: 'Disk full',
    title: 'Alert on disk at 80%',
    owner: null,
    due_date: null,
    status: 'open',
    overdue: false,
    created_at: '2026-01-02T03:04:05Z',
    completed_at: null,
    ...overrides,
  };
}

describe('the shared admin list and form (categories, tags, templates)', { timeout: 30_000 }, () => {
  it('lists, adds, edits in a dialog that takes the focus, announces refusals and deletes a category', async () => {
    let categories: Category[] = [{ id: 'c1', name: 'network', description: 'Links' }];
    const api = mockApi({
      'GET /api/v1/auth/session': { status: 200, body: session(admin) },
      'GET /api/v1/incidents/categories': () => ({ status: 200, body: categories }),
      'POST /api/v1/incidents/categories': (request) => {
        const body = request.body as { name: string; description: string };
        if (body.name === 'network') {
          return {
            status: 409,
            body: {
              error: {
                code: 'conflict',
                message: "A category named 'network' exists already.",
                details: [{ field: 'name', message: 'taken', type: 'duplicate' }],
              },
            },
          };
        }
        const created = { id: 'c2', ...body };
        categories = [...categories, created];
        return { status: 201, body: created };
      },
      'PATCH /api/v1/incidents/categories/c1': (request) => {
        categories = [{ ...categories[0], ...(request.body as { name: string; description: string }), id: 'c1' }, ...categories.slice(1)];
        return { status: 200, body: categories[0] };
      },
      'DELETE /api/v1/incidents/categories/c2': () => {
        categories = categories.filter((c) => c.id !== 'c2');
        return { status: 204 };
      },
    });
    renderApp('/incidents/admin/categories');
    const table = await screen.findByTestId('categories-table');
    expect(await within(table).findByRole('cell', { name: 'network' })).toBeInTheDocument();
    expect(document.title).toBe('Incident categories · OpsDeck');
    const user = userEvent.setup();

    // A taken name: said next to the field, and announced.
    await user.type(screen.getByLabelText(/^Name/), 'network');
    await user.click(screen.getByRole('button', { name: 'Add category' }));
    expect(await screen.findByText('taken')).toBeInTheDocument();
    expect(screen.getByLabelText(/^Name/)).toHaveAttribute('aria-invalid', 'true');
    expect(screen.getByTestId('form-announcement')).toHaveTextContent('The category was not saved. Name: taken.');

    await user.clear(screen.getByLabelText(/^Name/));
    await user.type(screen.getByLabelText(/^Name/), 'database');
    await user.click(screen.getByRole('button', { name: 'Add category' }));
    expect(await within(screen.getByRole('status')).findByText('Category “database” added.')).toBeInTheDocument();
    expect(await within(table).findByRole('cell', { name: 'database' })).toBeInTheDocument();
    expect(screen.getByLabelText(/^Name/)).toHaveValue('');
    expect(screen.queryByTestId('form-announcement')).toBeNull();

    // Edit: a dialog whose first field has the focus.
    await user.click(within(table).getByRole('button', { name: 'Edit network' }));
    const dialog = await screen.findByRole('dialog', { name: 'Edit category' });
    const name = within(dialog).getByLabelText(/^Name/);
    await waitFor(() => expect(name).toHaveFocus());
    expect(name).toHaveValue('network');
    await user.clear(name);
    await user.type(name, 'networking');
    await user.click(within(dialog).getByRole('button', { name: 'Save category' }));
    expect(await within(screen.getByRole('status')).findByText('Category “networking” saved.')).toBeInTheDocument();
    await waitFor(() => expect(screen.queryByRole('dialog')).toBeNull());
    expect(api.requests.find((r) => r.method === 'PATCH')?.body).toEqual({ name: 'networking', description: 'Links' });

    await user.click(within(table).getByRole('button', { name: 'Delete database' }));
    const confirm = await screen.findByRole('dialog', { name: 'Delete category' });
    expect(confirm).toHaveTextContent('Delete the category database?');
    await user.click(within(confirm).getByRole('button', { name: 'Delete category' }));
    expect(await within(screen.getByRole('status')).findByText('Category “database” deleted.')).toBeInTheDocument();
    await waitFor(() => expect(within(table).queryByRole('cell', { name: 'database' })).toBeNull());
  });

  it('adds and deletes tags, with the refusal next to the field', async () => {
    let tags: Tag[] = [{ id: 't1', name: 'edge' }];
    mockApi({
      'GET /api/v1/auth/session': { status: 200, body: session(admin) },
      'GET /api/v1/incidents/tags': () => ({ status: 200, body: tags }),
      'POST /api/v1/incidents/tags': (request) => {
        const { name } = request.body as { name: string };
        if (name === 'edge') return apiError(409, 'conflict', "The tag 'edge' exists already.");
        const tag = { id: 't2', name };
        tags = [...tags, tag];
        return { status: 201, body: tag };
      },
      'DELETE /api/v1/incidents/tags/t1': () => {
        tags = tags.filter((t) => t.id !== 't1');
        return { status: 204 };
      },
    });
    renderApp('/incidents/admin/tags');
    const table = await screen.findByTestId('tags-table');
    await within(table).findByRole('cell', { name: 'edge' });
    const user = userEvent.setup();
    await user.type(screen.getByLabelText(/^Name/), 'edge');
    await user.click(screen.getByRole('button', { name: 'Add tag' }));
    expect(await screen.findByTestId('form-announcement')).toHaveTextContent("The tag 'edge' exists already.");
    expect(screen.getByLabelText(/^Name/)).toHaveAttribute('aria-invalid', 'true');
    expect(screen.getByLabelText(/^Name/)).toHaveAccessibleDescription(expect.stringContaining("The tag 'edge' exists already."));
    expect(screen.queryByTestId('form-error')).toBeNull();
    await user.clear(screen.getByLabelText(/^Name/));
    await user.type(screen.getByLabelText(/^Name/), 'dns');
    await user.click(screen.getByRole('button', { name: 'Add tag' }));
    expect(await within(table).findByRole('cell', { name: 'dns' })).toBeInTheDocument();
    await user.click(within(table).getByRole('button', { name: 'Delete edge' }));
    await user.click(within(await screen.findByRole('dialog', { name: 'Delete tag' })).getByRole('button', { name: 'Delete tag' }));
    await waitFor(() => expect(within(table).queryByRole('cell', { name: 'edge' })).toBeNull());
    expect(screen.getByRole('status')).toHaveTextContent('Tag “edge” deleted.');
  });

  it('shows the templates before their form, and edits one', async () => {
    const template = {
      id: 'p1',
      name: 'Standard',
      body: '## Summary',
      is_default: true,
      updated_at: '2026-01-02T03:04:05Z',
    };
    const api = mockApi({
      'GET /api/v1/auth/session': { status: 200, body: session(admin) },
      'GET /api/v1/incidents/postmortem-templates': { status: 200, body: [template] },
      'PUT /api/v1/incidents/postmortem-templates/p1': (request) => ({
        status: 200,
        body: { ...template, ...(request.body as object) },
      }),
    });
    renderApp('/incidents/admin/templates');
    const table = await screen.findByTestId('templates-table');
    expect(within(table).getByText('Default')).toBeInTheDocument();
    const heading = screen.getByRole('heading', { name: 'New template' });
    expect(table.compareDocumentPosition(heading) & Node.DOCUMENT_POSITION_FOLLOWING).toBeTruthy();
    const user = userEvent.setup();
    await user.click(within(table).getByRole('button', { name: 'Edit Standard' }));
    const dialog = await screen.findByRole('dialog', { name: 'Edit template' });
    await waitFor(() => expect(within(dialog).getByLabelText(/^Name/)).toHaveFocus());
    await user.click(within(dialog).getByRole('button', { name: 'Save template' }));
    expect(await within(screen.getByRole('status')).findByText('Template “Standard” saved.')).toBeInTheDocument();
    expect(api.requests.find((r) => r.method === 'PUT')?.body).toEqual({ name: 'Standard', body: '## Summary', is_default: true });
  });
});

describe('alert integrations: editing the severity map', { timeout: 60_000 }, () => {
  it('starts the editor from the saved map, sends the whole map, and places the API refusal on its row', async () => {
    let current = integration();
    const revoked = integration({ id: 'b'.repeat(32), name: 'old one', active: false, revoked_at: '2026-01-03T00:00:00Z' });
    const api = mockApi({
      'GET /api/v1/auth/session': { status: 200, body: session(admin) },
      'GET /api/v1/incidents/categories': { status: 200, body: [] },
      'GET /api/v1/incidents/integrations': () => ({ status: 200, body: { items: [current, revoked], next_cursor: null } }),
      [`PATCH /api/v1/incidents/integrations/${'a'.repeat(32)}`]: (request) => {
        const body = request.body as { severity_map: Record<string, string> };
        if (Object.keys(body.severity_map).some((value) => value.length > 255)) {
          return {
            status: 422,
            body: {
              error: {
                code: 'validation_failed',
                message: 'The request is not valid.',
                details: [{ field: `body.severity_map.${'x'.repeat(300)}.[key]`, message: 'String should have at most 255 characters' }],
              },
            },
          };
        }
        current = { ...current, ...(request.body as Partial<Integration>) };
        return { status: 200, body: current };
      },
    });
    renderApp('/incidents/admin/integrations');
    const table = await screen.findByTestId('integrations-table');
    await within(table).findByRole('cell', { name: 'prod alertmanager' });
    // A revoked integration is neither edited nor revoked again.
    expect(within(table).queryByRole('button', { name: 'Edit old one' })).toBeNull();
    expect(within(table).queryByRole('button', { name: 'Revoke old one' })).toBeNull();
    const user = userEvent.setup();
    await user.click(within(table).getByRole('button', { name: 'Edit prod alertmanager' }));
    const dialog = await screen.findByRole('dialog', { name: 'Edit integration' });
    await waitFor(() => expect(within(dialog).getByLabelText(/^Name/)).toHaveFocus());
    expect(within(dialog).queryByRole('radiogroup')).toBeNull();
    expect(within(dialog).getAllByTestId('severity-map-row')).toHaveLength(2);
    expect(within(dialog).getByLabelText('Label value 2')).toHaveValue('warning');

    // A repeated value is refused before anything is sent, and announced.
    await user.click(within(dialog).getByRole('button', { name: 'Add a value' }));
    await user.type(within(dialog).getByLabelText('Label value 3'), 'Warning');
    await user.click(within(dialog).getByRole('button', { name: 'Save integration' }));
    expect(await within(dialog).findByText('“Warning” is already on row 2 (values ignore case).')).toBeInTheDocument();
    expect(within(dialog).getByTestId('form-announcement')).toHaveTextContent('some values of the severity map need fixing');
    expect(api.requests.some((r) => r.method === 'PATCH')).toBe(false);

    // The API's refusal goes next to the row it names.
    await user.clear(within(dialog).getByLabelText('Label value 3'));
    await user.click(within(dialog).getByLabelText('Label value 3'));
    await user.paste('x'.repeat(300));
    await user.click(within(dialog).getByRole('button', { name: 'Save integration' }));
    expect(await within(dialog).findByText('String should have at most 255 characters')).toBeInTheDocument();
    expect(within(dialog).getByLabelText('Label value 3')).toHaveAttribute('aria-invalid', 'true');

    await user.clear(within(dialog).getByLabelText('Label value 3'));
    await user.type(within(dialog).getByLabelText('Label value 3'), 'page');
    await user.selectOptions(within(dialog).getByLabelText('Severity of value 3'), 'SEV1');
    await user.selectOptions(within(dialog).getByLabelText('Severity of value 1'), 'SEV2');
    await user.click(within(dialog).getByRole('button', { name: 'Save integration' }));
    await waitFor(() => expect(screen.queryByRole('dialog')).toBeNull());
    expect(screen.getByRole('status')).toHaveTextContent('“prod alertmanager” was saved');
    expect(api.requests.filter((r) => r.method === 'PATCH').at(-1)?.body).toEqual({
      name: 'prod alertmanager',
      severity_label: 'severity',
      severity_map: { critical: 'SEV2', warning: 'SEV3', page: 'SEV1' },
      default_severity: 'SEV3',
      resolve_on_recovery: false,
      category: null,
    });
    const row = within(table).getByRole('row', { name: /prod alertmanager/ });
    await waitFor(() => expect(row).toHaveTextContent('critical → SEV2, warning → SEV3, page → SEV1'));
  });

  it('reads a saved map back as rows', () => {
    expect(rowsFromSeverityMap({ p1: 'SEV1', low: 'SEV4' })).toEqual([
      { value: 'p1', severity: 'SEV1' },
      { value: 'low', severity: 'SEV4' },
    ]);
  });
});

function SignedIn({ children }: { children: ReactNode }) {
  const { user } = useAuth();
  return user ? <>{children}</> : null;
}

function renderFollowUps(incident: Incident, notices: string[]) {
  return render(
    <MemoryRouter>
      <MantineProvider theme={theme} env="test">
        <QueryClientProvider client={createQueryClient()}>
          <AuthProvider>
            <SignedIn>
              <IncidentFollowUps incident={incident} onNotice={(text) => notices.push(text)} />
            </SignedIn>
          </AuthProvider>
        </QueryClientProvider>
      </MantineProvider>
    </MemoryRouter>,
  );
}

const incident = { number: 7, can_edit: true } as Incident;

describe('follow-ups on the incident page', { timeout: 30_000 }, () => {
  it('lets an editor change a follow-up status there, through the follow-ups API', async () => {
    let item = followUp();
    const api = mockApi({
      'GET /api/v1/auth/session': { status: 200, body: session(admin) },
      'GET /api/v1/incidents/7/follow-ups': () => ({ status: 200, body: { items: [item], next_cursor: null } }),
      [`PATCH /api/v1/incidents/follow-ups/${item.id}`]: (request) => {
        item = { ...item, ...(request.body as Partial<FollowUp>) };
        return { status: 200, body: item };
      },
    });
    const notices: string[] = [];
    renderFollowUps(incident, notices);
    const select = await screen.findByLabelText('Status of “Alert on disk at 80%”');
    expect(select).toHaveValue('open');
    await userEvent.setup().selectOptions(select, 'in_progress');
    await waitFor(() => expect(notices).toEqual(['Follow-up “Alert on disk at 80%” is now in progress.']));
    const patch = api.requests.find((r) => r.method === 'PATCH');
    expect(patch?.path).toBe(`/api/v1/incidents/follow-ups/${item.id}`);
    expect(patch?.body).toEqual({ status: 'in_progress' });
    await waitFor(() => expect(screen.getByLabelText('Status of “Alert on disk at 80%”')).toHaveValue('in_progress'));
  });

  it('shows the refusal next to the follow-up and keeps its status', async () => {
    const item = followUp();
    mockApi({
      'GET /api/v1/auth/session': { status: 200, body: session(admin) },
      'GET /api/v1/incidents/7/follow-ups': { status: 200, body: { items: [item], next_cursor: null } },
      [`PATCH /api/v1/incidents/follow-ups/${item.id}`]: apiError(403, 'forbidden', 'Only the commander may change it.'),
    });
    renderFollowUps(incident, []);
    const select = await screen.findByLabelText('Status of “Alert on disk at 80%”');
    await userEvent.setup().selectOptions(select, 'done');
    expect(await screen.findByRole('alert')).toHaveTextContent('Only the commander may change it.');
    expect(select).toHaveValue('open');
  });

  it('lets the owner move their own follow-up, and shows others a badge', async () => {
    mockApi({
      'GET /api/v1/auth/session': { status: 200, body: session(member) },
      'GET /api/v1/incidents/7/follow-ups': {
        status: 200,
        body: {
          items: [
            followUp({ id: '1'.repeat(32), title: 'Mine', owner: { id: member.id, username: 'mia', display_name: 'Mia' } }),
            followUp({ id: '2'.repeat(32), title: 'Theirs', owner: { id: 'u-x', username: 'x', display_name: 'X' } }),
          ],
          next_cursor: null,
        },
      },
    });
    renderFollowUps({ number: 7, can_edit: false } as Incident, []);
    expect(await screen.findByLabelText('Status of “Mine”')).toBeInTheDocument();
    expect(screen.queryByLabelText('Status of “Theirs”')).toBeNull();
    expect(screen.getAllByTestId('incident-follow-up')[1]).toHaveTextContent('Open');
    expect(screen.queryByRole('textbox', { name: /What to do/ })).toBeNull();
    expect(canMoveFollowUp({ can_edit: false }, { owner: null }, member.id)).toBe(false);
    expect(canMoveFollowUp({ can_edit: true }, { owner: null }, member.id)).toBe(true);
  });
});
