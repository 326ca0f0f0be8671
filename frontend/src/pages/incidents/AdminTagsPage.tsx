import { useState, type FormEvent } from 'react';
import { Alert, Button, Group, Modal, Skeleton, Stack, Table, Text, TextInput, Title } from '@mantine/core';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { createTag, deleteTag, incidentsKeys, listTags, type Tag } from '../../api/incidents';
import { FormError } from '../../components/FormError';
import { usePageTitle } from '../../hooks/usePageTitle';
import { useSubmit } from '../../hooks/useSubmit';
import { formFieldErrors } from './filters';

/** Admins manage the tags people put on incidents. */
export default function AdminTagsPage() {
  usePageTitle('Incident tags');
  const queryClient = useQueryClient();
  const tags = useQuery({ queryKey: incidentsKeys.tags(), queryFn: listTags });
  const [name, setName] = useState('');
  const [deleting, setDeleting] = useState<Tag | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const reload = () => queryClient.invalidateQueries({ queryKey: incidentsKeys.tags() });
  const create = useSubmit(async () => {
    const tag = await createTag(name);
    setName('');
    setNotice(`Tag “${tag.name}” added.`);
    await reload();
  });
  const remove = useSubmit(async (tag: Tag) => {
    await deleteTag(tag.id);
    setDeleting(null);
    setNotice(`Tag “${tag.name}” deleted.`);
    await reload();
  });
  const fields = formFieldErrors(create.error);

  function submit(event: FormEvent) {
    event.preventDefault();
    void create.run();
  }

  return (
    <Stack gap="lg">
      <div>
        <Title order={1}>Incident tags</Title>
        <Text c="dimmed" size="sm">
          Labels people put on incidents to find them later (stored in lower case).
        </Text>
      </div>
      <div role="status">
        {notice ? (
          <Alert color="green" variant="light" withCloseButton closeButtonLabel="Dismiss" onClose={() => setNotice(null)}>
            {notice}
          </Alert>
        ) : null}
      </div>
      <section aria-labelledby="new-tag-title">
        <Title order={2} size="h4" id="new-tag-title" mb="xs">
          New tag
        </Title>
        <form onSubmit={submit} noValidate>
          <Stack gap="sm">
            <FormError error={create.error && !fields.name && create.error.status !== 409 ? create.error : null} />
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
          </Stack>
        </form>
      </section>
      {tags.isPending ? (
        <Skeleton height={80} aria-label="Loading the tags" />
      ) : tags.data && tags.data.length ? (
        <Table verticalSpacing="sm" aria-label="Incident tags" data-testid="tags-table" maw={560}>
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Name</Table.Th>
              <Table.Th>
                <span className="visually-hidden">Actions</span>
              </Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {tags.data.map((tag) => (
              <Table.Tr key={tag.id}>
                <Table.Td className="break-anywhere">{tag.name}</Table.Td>
                <Table.Td>
                  <Group justify="flex-end">
                    <Button size="compact-xs" variant="subtle" color="red" onClick={() => setDeleting(tag)}>
                      Delete <span className="visually-hidden">{tag.name}</span>
                    </Button>
                  </Group>
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      ) : tags.data ? (
        <Text size="sm" c="dimmed">
          No tags yet.
        </Text>
      ) : null}
      <Modal opened={deleting !== null} onClose={() => setDeleting(null)} title="Delete tag">
        <Stack gap="md">
          <FormError error={remove.error} />
          <Text size="sm" className="break-anywhere">
            Delete the tag <strong>{deleting?.name}</strong>? It comes off every incident that has it.
          </Text>
          <Group justify="flex-end">
            <Button variant="default" onClick={() => setDeleting(null)}>
              Cancel
            </Button>
            <Button color="red" loading={remove.pending} onClick={() => deleting && void remove.run(deleting)}>
              Delete tag
            </Button>
          </Group>
        </Stack>
      </Modal>
    </Stack>
  );
}
