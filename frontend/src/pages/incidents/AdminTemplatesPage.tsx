import { useState, type FormEvent } from 'react';
import { Alert, Badge, Button, Checkbox, Group, Modal, Skeleton, Stack, Table, Text, Textarea, TextInput, Title } from '@mantine/core';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import {
  createTemplate,
  deleteTemplate,
  incidentsKeys,
  listTemplates,
  updateTemplate,
  type PostmortemTemplate,
} from '../../api/incidents';
import { FormError } from '../../components/FormError';
import { formatDateTime } from '../../components/format';
import { usePageTitle } from '../../hooks/usePageTitle';
import { useSubmit } from '../../hooks/useSubmit';
import { formFieldErrors } from './filters';

function TemplateForm({
  initial,
  submitLabel,
  onSubmit,
  onCancel,
}: {
  initial?: PostmortemTemplate;
  submitLabel: string;
  onSubmit: (values: { name: string; body: string; is_default: boolean }) => Promise<unknown>;
  onCancel?: () => void;
}) {
  const [name, setName] = useState(initial?.name ?? '');
  const [body, setBody] = useState(initial?.body ?? '');
  const [isDefault, setIsDefault] = useState(initial?.is_default ?? false);
  const save = useSubmit(async () => {
    await onSubmit({ name, body, is_default: isDefault });
    if (!initial) {
      setName('');
      setBody('');
      setIsDefault(false);
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
        <FormError error={save.error && !fields.name && !fields.body ? save.error : null} />
        <TextInput
          label="Name"
          required
          maxLength={100}
          value={name}
          onChange={(event) => setName(event.currentTarget.value)}
          error={fields.name}
          data-autofocus
          maw={360}
        />
        <Textarea
          label="Template"
          description="Markdown; a new postmortem starts as a copy of it"
          autosize
          minRows={8}
          maxRows={24}
          value={body}
          onChange={(event) => setBody(event.currentTarget.value)}
          error={fields.body}
        />
        <Checkbox
          label="The default template"
          checked={isDefault}
          onChange={(event) => setIsDefault(event.currentTarget.checked)}
        />
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

/** Admins edit the templates postmortems start from. */
export default function AdminTemplatesPage() {
  usePageTitle('Postmortem templates');
  const queryClient = useQueryClient();
  const templates = useQuery({ queryKey: incidentsKeys.templates(), queryFn: listTemplates });
  const [editing, setEditing] = useState<PostmortemTemplate | null>(null);
  const [deleting, setDeleting] = useState<PostmortemTemplate | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const reload = () => queryClient.invalidateQueries({ queryKey: incidentsKeys.templates() });
  const remove = useSubmit(async (template: PostmortemTemplate) => {
    await deleteTemplate(template.id);
    setDeleting(null);
    setNotice(`Template “${template.name}” deleted.`);
    await reload();
  });

  return (
    <Stack gap="lg">
      <div>
        <Title order={1}>Postmortem templates</Title>
        <Text c="dimmed" size="sm">
          The outline a new postmortem starts from: summary, impact, timeline, root causes, what went well and badly.
        </Text>
      </div>
      <div role="status">
        {notice ? (
          <Alert color="green" variant="light" withCloseButton closeButtonLabel="Dismiss" onClose={() => setNotice(null)}>
            {notice}
          </Alert>
        ) : null}
      </div>
      {templates.isPending ? (
        <Skeleton height={80} aria-label="Loading the templates" />
      ) : templates.data && templates.data.length ? (
        <Table verticalSpacing="sm" aria-label="Postmortem templates" data-testid="templates-table">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Name</Table.Th>
              <Table.Th>Updated</Table.Th>
              <Table.Th>
                <span className="visually-hidden">Actions</span>
              </Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {templates.data.map((template) => (
              <Table.Tr key={template.id}>
                <Table.Td className="break-anywhere">
                  {template.name}
                  {template.is_default ? (
                    <Badge ml={6} size="sm" variant="light">
                      Default
                    </Badge>
                  ) : null}
                </Table.Td>
                <Table.Td>{formatDateTime(template.updated_at)}</Table.Td>
                <Table.Td>
                  <Group gap={4} justify="flex-end" wrap="nowrap">
                    <Button size="compact-xs" variant="subtle" onClick={() => setEditing(template)}>
                      Edit <span className="visually-hidden">{template.name}</span>
                    </Button>
                    <Button size="compact-xs" variant="subtle" color="red" onClick={() => setDeleting(template)}>
                      Delete <span className="visually-hidden">{template.name}</span>
                    </Button>
                  </Group>
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      ) : templates.data ? (
        <Text size="sm" c="dimmed">
          No templates yet.
        </Text>
      ) : null}
      <section aria-labelledby="new-template-title">
        <Title order={2} size="h4" id="new-template-title" mb="xs">
          New template
        </Title>
        <TemplateForm
          submitLabel="Add template"
          onSubmit={async (values) => {
            const template = await createTemplate(values);
            setNotice(`Template “${template.name}” added.`);
            await reload();
          }}
        />
      </section>
      <Modal opened={editing !== null} onClose={() => setEditing(null)} title="Edit template" size="xl">
        {editing ? (
          <TemplateForm
            initial={editing}
            submitLabel="Save template"
            onCancel={() => setEditing(null)}
            onSubmit={async (values) => {
              const template = await updateTemplate(editing.id, values);
              setEditing(null);
              setNotice(`Template “${template.name}” saved.`);
              await reload();
            }}
          />
        ) : null}
      </Modal>
      <Modal opened={deleting !== null} onClose={() => setDeleting(null)} title="Delete template">
        <Stack gap="md">
          <FormError error={remove.error} />
          <Text size="sm" className="break-anywhere">
            Delete the template <strong>{deleting?.name}</strong>? Postmortems started from it keep their text.
          </Text>
          <Group justify="flex-end">
            <Button variant="default" onClick={() => setDeleting(null)}>
              Cancel
            </Button>
            <Button color="red" loading={remove.pending} onClick={() => deleting && void remove.run(deleting)}>
              Delete template
            </Button>
          </Group>
        </Stack>
      </Modal>
    </Stack>
  );
}
