import { useState, type FormEvent } from 'react';
import { Alert, Button, Group, Modal, Skeleton, Stack, Table, Text, TextInput, Title } from '@mantine/core';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import {
  createCategory,
  deleteCategory,
  incidentsKeys,
  listCategories,
  updateCategory,
  type Category,
} from '../../api/incidents';
import { FormError } from '../../components/FormError';
import { usePageTitle } from '../../hooks/usePageTitle';
import { useSubmit } from '../../hooks/useSubmit';
import { formFieldErrors } from './filters';

function CategoryForm({
  initial,
  submitLabel,
  onSubmit,
  onCancel,
}: {
  initial?: Category;
  submitLabel: string;
  onSubmit: (name: string, description: string) => Promise<unknown>;
  onCancel?: () => void;
}) {
  const [name, setName] = useState(initial?.name ?? '');
  const [description, setDescription] = useState(initial?.description ?? '');
  const save = useSubmit(async () => {
    await onSubmit(name, description);
    if (!initial) {
      setName('');
      setDescription('');
    }
  });
  const fields = formFieldErrors(save.error);
  function submit(event: FormEvent) {
    event.preventDefault();
    void save.run();
  }
  return (
    <form onSubmit={submit} noValidate>
      <Stack gap="sm">
        <FormError error={save.error && !fields.name && !fields.description ? save.error : null} />
        <Group align="flex-start" wrap="wrap">
          <TextInput
            label="Name"
            required
            maxLength={64}
            value={name}
            onChange={(event) => setName(event.currentTarget.value)}
            error={fields.name ?? (save.error?.status === 409 ? save.error.message : undefined)}
            data-autofocus
            w={240}
          />
          <TextInput
            label="Description"
            description="Optional"
            maxLength={500}
            value={description}
            onChange={(event) => setDescription(event.currentTarget.value)}
            error={fields.description}
            style={{ flex: 1, minWidth: 240 }}
          />
        </Group>
        <Group gap="xs">
          <Button type="submit" loading={save.pending}>
            {submitLabel}
          </Button>
          {onCancel ? (
            <Button variant="default" onClick={onCancel}>
              Cancel
            </Button>
          ) : null}
        </Group>
      </Stack>
    </form>
  );
}

/** Admins manage the categories incidents are filed under. */
export default function AdminCategoriesPage() {
  usePageTitle('Incident categories');
  const queryClient = useQueryClient();
  const categories = useQuery({ queryKey: incidentsKeys.categories(), queryFn: listCategories });
  const [editing, setEditing] = useState<Category | null>(null);
  const [deleting, setDeleting] = useState<Category | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const reload = () => queryClient.invalidateQueries({ queryKey: incidentsKeys.categories() });
  const remove = useSubmit(async (category: Category) => {
    await deleteCategory(category.id);
    setDeleting(null);
    setNotice(`Category “${category.name}” deleted.`);
    await reload();
  });

  return (
    <Stack gap="lg">
      <div>
        <Title order={1}>Incident categories</Title>
        <Text c="dimmed" size="sm">
          What an incident is about (network, database, ...). Everybody picks from this list.
        </Text>
      </div>
      <div role="status">
        {notice ? (
          <Alert color="green" variant="light" withCloseButton closeButtonLabel="Dismiss" onClose={() => setNotice(null)}>
            {notice}
          </Alert>
        ) : null}
      </div>
      <section aria-labelledby="new-category-title">
        <Title order={2} size="h4" id="new-category-title" mb="xs">
          New category
        </Title>
        <CategoryForm
          submitLabel="Add category"
          onSubmit={async (name, description) => {
            const category = await createCategory(name, description);
            setNotice(`Category “${category.name}” added.`);
            await reload();
          }}
        />
      </section>
      {categories.isPending ? (
        <Skeleton height={80} aria-label="Loading the categories" />
      ) : categories.data && categories.data.length ? (
        <Table.ScrollContainer minWidth={560}>
          <Table verticalSpacing="sm" aria-label="Incident categories" data-testid="categories-table">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Name</Table.Th>
                <Table.Th>Description</Table.Th>
                <Table.Th>
                  <span className="visually-hidden">Actions</span>
                </Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {categories.data.map((category) => (
                <Table.Tr key={category.id}>
                  <Table.Td className="break-anywhere">{category.name}</Table.Td>
                  <Table.Td className="break-anywhere">{category.description || '—'}</Table.Td>
                  <Table.Td>
                    <Group gap={4} wrap="nowrap" justify="flex-end">
                      <Button size="compact-xs" variant="subtle" onClick={() => setEditing(category)}>
                        Edit <span className="visually-hidden">{category.name}</span>
                      </Button>
                      <Button size="compact-xs" variant="subtle" color="red" onClick={() => setDeleting(category)}>
                        Delete <span className="visually-hidden">{category.name}</span>
                      </Button>
                    </Group>
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      ) : categories.data ? (
        <Text size="sm" c="dimmed">
          No categories yet.
        </Text>
      ) : null}
      <Modal opened={editing !== null} onClose={() => setEditing(null)} title="Edit category" size="lg">
        {editing ? (
          <CategoryForm
            initial={editing}
            submitLabel="Save category"
            onCancel={() => setEditing(null)}
            onSubmit={async (name, description) => {
              const category = await updateCategory(editing.id, { name, description });
              setEditing(null);
              setNotice(`Category “${category.name}” saved.`);
              await reload();
            }}
          />
        ) : null}
      </Modal>
      <Modal opened={deleting !== null} onClose={() => setDeleting(null)} title="Delete category">
        <Stack gap="md">
          <FormError error={remove.error} />
          <Text size="sm" className="break-anywhere">
            Delete the category <strong>{deleting?.name}</strong>? Incidents filed under it keep no category.
          </Text>
          <Group justify="flex-end">
            <Button variant="default" onClick={() => setDeleting(null)}>
              Cancel
            </Button>
            <Button color="red" loading={remove.pending} onClick={() => deleting && void remove.run(deleting)}>
              Delete category
            </Button>
          </Group>
        </Stack>
      </Modal>
    </Stack>
  );
}
