import { useState, type FormEvent, type ReactNode } from 'react';
import {
  Button,
  Group,
  Modal,
  Skeleton,
  Stack,
  Table,
  Text,
  Title,
  type MantineSize,
  type TableTdProps,
} from '@mantine/core';
import type { ApiError } from '../../api/errors';
import { FormError } from '../../components/FormError';
import { Notice } from '../../components/Notice';
import { usePageTitle } from '../../hooks/usePageTitle';
import { useSubmit } from '../../hooks/useSubmit';

/**
 * The incidents admin pages (categories, tags, postmortem templates, alert integrations) are
 * one shape: a title, a status line for what was just done, a form that adds one, a table of
 * them, an edit dialog and a confirmation before deleting (or revoking) one. `AdminCollection`
 * is that page; `AdminForm` is the form inside it. Each page says only what is its own: the
 * columns, the fields, the API calls and the words.
 */

/** A notice for the status line (`null` clears it). */
export type Notify = (text: string | null) => void;

export interface AdminColumn<T> {
  header: string;
  cell: (item: T) => ReactNode;
  /** Extra props of the cell (`className="break-anywhere"` for names people type). */
  td?: TableTdProps;
}

export interface AdminCollectionProps<T> {
  /** The page's heading and document title. */
  title: string;
  intro: ReactNode;
  items: readonly T[] | undefined;
  pending: boolean;
  itemKey: (item: T) => string;
  /** How an item is named to screen readers on its buttons ("Edit network"). */
  itemName: (item: T) => string;
  loadingLabel: string;
  empty: string;
  table: {
    label: string;
    testId: string;
    columns: AdminColumn<T>[];
    /** Scrolls sideways below this width (wide tables). */
    minWidth?: number;
    maw?: number;
  };
  create: {
    /** The section's heading ("New category") and its id. */
    title: string;
    id: string;
    form: (notify: Notify) => ReactNode;
    /** Where the form goes: before the table (the default) or after it. */
    after?: boolean;
  };
  edit?: {
    title: string;
    size?: MantineSize;
    /** Whether an item offers "Edit" (a revoked integration does not). */
    allowed?: (item: T) => boolean;
    /** The form for `item`; it calls `done` with the notice once saved, `cancel` to give up. */
    form: (item: T, done: (notice: string) => void, cancel: () => void) => ReactNode;
  };
  remove?: {
    /** The button's verb: "Delete", "Revoke". */
    verb: string;
    /** The dialog's title, also its confirming button ("Delete category"). */
    title: string;
    allowed?: (item: T) => boolean;
    question: (item: T) => ReactNode;
    /** Removes it and answers the notice to show. */
    run: (item: T) => Promise<string>;
  };
  /** Between the status line and the form (the token of a new integration). */
  top?: (notify: Notify) => ReactNode;
  /** After the table ("Load more"). */
  bottom?: ReactNode;
}

export function AdminCollection<T>({
  title,
  intro,
  items,
  pending,
  itemKey,
  itemName,
  loadingLabel,
  empty,
  table,
  create,
  edit,
  remove,
  top,
  bottom,
}: AdminCollectionProps<T>) {
  usePageTitle(title);
  const [notice, setNotice] = useState<string | null>(null);
  const [editing, setEditing] = useState<T | null>(null);
  const [removing, setRemoving] = useState<T | null>(null);
  const removal = useSubmit(async (item: T) => {
    if (!remove) return;
    const text = await remove.run(item);
    setRemoving(null);
    setNotice(text);
  });
  const canEdit = (item: T) => edit !== undefined && (edit.allowed?.(item) ?? true);
  const canRemove = (item: T) => remove !== undefined && (remove.allowed?.(item) ?? true);
  const withActions = edit !== undefined || remove !== undefined;

  const section = (
    <section aria-labelledby={create.id}>
      <Title order={2} size="h4" id={create.id} mb="xs">
        {create.title}
      </Title>
      {create.form(setNotice)}
    </section>
  );
  const rows = items ?? [];
  const list = pending ? (
    <Skeleton height={80} aria-label={loadingLabel} />
  ) : rows.length ? (
    <Table.ScrollContainer minWidth={table.minWidth ?? 0}>
      <Table verticalSpacing="sm" aria-label={table.label} data-testid={table.testId} maw={table.maw}>
        <Table.Thead>
          <Table.Tr>
            {table.columns.map((column) => (
              <Table.Th key={column.header}>{column.header}</Table.Th>
            ))}
            {withActions ? (
              <Table.Th>
                <span className="visually-hidden">Actions</span>
              </Table.Th>
            ) : null}
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {rows.map((item) => (
            <Table.Tr key={itemKey(item)}>
              {table.columns.map((column) => (
                <Table.Td key={column.header} {...column.td}>
                  {column.cell(item)}
                </Table.Td>
              ))}
              {withActions ? (
                <Table.Td>
                  <Group gap={4} wrap="nowrap" justify="flex-end">
                    {canEdit(item) ? (
                      <Button size="compact-xs" variant="subtle" onClick={() => setEditing(item)}>
                        Edit <span className="visually-hidden">{itemName(item)}</span>
                      </Button>
                    ) : null}
                    {remove && canRemove(item) ? (
                      <Button
                        size="compact-xs"
                        variant="subtle"
                        color="red"
                        onClick={() => {
                          removal.reset();
                          setRemoving(item);
                        }}
                      >
                        {remove.verb} <span className="visually-hidden">{itemName(item)}</span>
                      </Button>
                    ) : null}
                  </Group>
                </Table.Td>
              ) : null}
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
    </Table.ScrollContainer>
  ) : items ? (
    <Text size="sm" c="dimmed">
      {empty}
    </Text>
  ) : null;

  return (
    <Stack gap="lg">
      <div>
        <Title order={1}>{title}</Title>
        <Text c="dimmed" size="sm">
          {intro}
        </Text>
      </div>
      <Notice notice={notice} onDismiss={() => setNotice(null)} />
      {top?.(setNotice)}
      {create.after ? null : section}
      {list}
      {bottom}
      {create.after ? section : null}
      {edit ? (
        <Modal opened={editing !== null} onClose={() => setEditing(null)} title={edit.title} size={edit.size ?? 'lg'}>
          {editing !== null
            ? edit.form(
                editing,
                (text) => {
                  setEditing(null);
                  setNotice(text);
                },
                () => setEditing(null),
              )
            : null}
        </Modal>
      ) : null}
      {remove ? (
        <Modal opened={removing !== null} onClose={() => setRemoving(null)} title={remove.title}>
          <Stack gap="md">
            <FormError error={removal.error} />
            <Text size="sm" className="break-anywhere">
              {removing !== null ? remove.question(removing) : null}
            </Text>
            <Group justify="flex-end">
              <Button variant="default" onClick={() => setRemoving(null)}>
                Cancel
              </Button>
              <Button color="red" loading={removal.pending} onClick={() => removing !== null && void removal.run(removing)}>
                {remove.title}
              </Button>
            </Group>
          </Stack>
        </Modal>
      ) : null}
    </Stack>
  );
}

export interface AdminFormProps {
  /** Called on submit (the default submit is prevented). */
  onSubmit: () => void;
  submitLabel: string;
  pending: boolean;
  /** The refusal to show above the fields; leave it null when a field shows it. */
  formError: ApiError | null;
  /**
   * Said to screen readers when the form is refused and the problems are next to the fields
   * (where nothing is announced): "Not saved: check the name". Null when nothing is wrong or the
   * form-level error says it already.
   */
  announce: string | null;
  onCancel?: () => void;
  /** false: the page places its own submit button (beside a single field). */
  actions?: boolean;
  children: ReactNode;
  maw?: number;
}

/** The form of an admin page: no browser validation (the API's answers are shown), the refusal above, the buttons below. */
export function AdminForm({
  onSubmit,
  submitLabel,
  pending,
  formError,
  announce,
  onCancel,
  actions = true,
  children,
  maw,
}: AdminFormProps) {
  function submit(event: FormEvent) {
    event.preventDefault();
    onSubmit();
  }
  return (
    <form onSubmit={submit} noValidate>
      <Stack gap="sm" maw={maw}>
        <FormError error={formError} />
        {announce && !formError ? (
          <div role="alert" className="visually-hidden" data-testid="form-announcement">
            {announce}
          </div>
        ) : null}
        {children}
        {actions ? (
          <Group gap="xs">
            <Button type="submit" loading={pending}>
              {submitLabel}
            </Button>
            {onCancel ? (
              <Button variant="default" onClick={onCancel}>
                Cancel
              </Button>
            ) : null}
          </Group>
        ) : null}
      </Stack>
    </form>
  );
}

/** What `announce` says for a refusal whose problems are next to fields: which fields, by their labels. */
export function fieldProblems(fields: Record<string, string>, labels: Record<string, string>, what = 'Not saved'): string | null {
  const named = Object.keys(fields)
    .filter((name) => labels[name])
    .map((name) => `${labels[name]}: ${fields[name]}`);
  return named.length ? `${what}. ${named.join('. ')}.` : null;
}
