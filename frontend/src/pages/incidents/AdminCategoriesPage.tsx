import { useState } from 'react';
import { Group, TextInput } from '@mantine/core';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import {
  createCategory,
  deleteCategory,
  incidentsKeys,
  listCategories,
  updateCategory,
  type Category,
} from '../../api/incidents';
import { useSubmit } from '../../hooks/useSubmit';
import { AdminCollection, AdminForm, fieldProblems } from './AdminCollection';
import { formFieldErrors } from './filters';

const LABELS = { name: 'Name', description: 'Description' };

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
  return (
    <AdminForm
      onSubmit={() => void save.run()}
      submitLabel={submitLabel}
      pending={save.pending}
      onCancel={onCancel}
      formError={save.error && !fields.name && !fields.description ? save.error : null}
      announce={fieldProblems(fields, LABELS, 'The category was not saved')}
    >
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
    </AdminForm>
  );
}

/** Admins manage the categories incidents are filed under. */
export default function AdminCategoriesPage() {
  const queryClient = useQueryClient();
  const categories = useQuery({ queryKey: incidentsKeys.categories(), queryFn: listCategories });
  const reload = () => queryClient.invalidateQueries({ queryKey: incidentsKeys.categories() });

  return (
    <AdminCollection<Category>
      title="Incident categories"
      intro="What an incident is about (network, database, ...). Everybody picks from this list."
      items={categories.data}
      pending={categories.isPending}
      itemKey={(category) => category.id}
      itemName={(category) => category.name}
      loadingLabel="Loading the categories"
      empty="No categories yet."
      table={{
        label: 'Incident categories',
        testId: 'categories-table',
        minWidth: 560,
        columns: [
          { header: 'Name', cell: (category) => category.name, td: { className: 'break-anywhere' } },
          { header: 'Description', cell: (category) => category.description || '—', td: { className: 'break-anywhere' } },
        ],
      }}
      create={{
        title: 'New category',
        id: 'new-category-title',
        form: (notify) => (
          <CategoryForm
            submitLabel="Add category"
            onSubmit={async (name, description) => {
              const category = await createCategory(name, description);
              notify(`Category “${category.name}” added.`);
              await reload();
            }}
          />
        ),
      }}
      edit={{
        title: 'Edit category',
        form: (editing, done, cancel) => (
          <CategoryForm
            initial={editing}
            submitLabel="Save category"
            onCancel={cancel}
            onSubmit={async (name, description) => {
              const category = await updateCategory(editing.id, { name, description });
              done(`Category “${category.name}” saved.`);
              await reload();
            }}
          />
        ),
      }}
      remove={{
        verb: 'Delete',
        title: 'Delete category',
        question: (category) => (
          <>
            Delete the category <strong>{category.name}</strong>? Incidents filed under it keep no category.
          </>
        ),
        run: async (category) => {
          await deleteCategory(category.id);
          void reload();
          return `Category “${category.name}” deleted.`;
        },
      }}
    />
  );
}
