import { useState } from 'react';
import { Button, Group, TextInput } from '@mantine/core';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { createTag, deleteTag, incidentsKeys, listTags, type Tag } from '../../api/incidents';
import { useSubmit } from '../../hooks/useSubmit';
import { AdminCollection, AdminForm, fieldProblems, type Notify } from './AdminCollection';
import { formFieldErrors } from './filters';

function TagForm({ onCreated }: { onCreated: Notify }) {
  const queryClient = useQueryClient();
  const [name, setName] = useState('');
  const create = useSubmit(async () => {
    const tag = await createTag(name);
    setName('');
    onCreated(`Tag “${tag.name}” added.`);
    await queryClient.invalidateQueries({ queryKey: incidentsKeys.tags() });
  });
  const fields = formFieldErrors(create.error);
  return (
    <AdminForm
      onSubmit={() => void create.run()}
      submitLabel="Add tag"
      pending={create.pending}
      actions={false}
      formError={create.error && !fields.name && create.error.status !== 409 ? create.error : null}
      announce={fieldProblems(fields, { name: 'Name' }, 'The tag was not added') ?? (create.error?.message || null)}
    >
      <Group align="flex-start">
        <TextInput
          label="Name"
          required
          maxLength={64}
          value={name}
          onChange={(event) => setName(event.currentTarget.value)}
          error={fields.name ?? (create.error?.status === 409 ? create.error.message : undefined)}
          w={240}
        />
        <Button type="submit" mt={25} loading={create.pending}>
          Add tag
        </Button>
      </Group>
    </AdminForm>
  );
}

/** Admins manage the tags people put on incidents. */
export default function AdminTagsPage() {
  const queryClient = useQueryClient();
  const tags = useQuery({ queryKey: incidentsKeys.tags(), queryFn: listTags });

  return (
    <AdminCollection<Tag>
      title="Incident tags"
      intro="Labels people put on incidents to find them later (stored in lower case)."
      items={tags.data}
      pending={tags.isPending}
      itemKey={(tag) => tag.id}
      itemName={(tag) => tag.name}
      loadingLabel="Loading the tags"
      empty="No tags yet."
      table={{
        label: 'Incident tags',
        testId: 'tags-table',
        maw: 560,
        columns: [{ header: 'Name', cell: (tag) => tag.name, td: { className: 'break-anywhere' } }],
      }}
      create={{ title: 'New tag', id: 'new-tag-title', form: (notify) => <TagForm onCreated={notify} /> }}
      remove={{
        verb: 'Delete',
        title: 'Delete tag',
        question: (tag) => (
          <>
            Delete the tag <strong>{tag.name}</strong>? It comes off every incident that has it.
          </>
        ),
        run: async (tag) => {
          await deleteTag(tag.id);
          void queryClient.invalidateQueries({ queryKey: incidentsKeys.tags() });
          return `Tag “${tag.name}” deleted.`;
        },
      }}
    />
  );
}
