import { useState } from 'react';
import { Badge, Checkbox, Textarea, TextInput } from '@mantine/core';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import {
  createTemplate,
  deleteTemplate,
  incidentsKeys,
  listTemplates,
  updateTemplate,
  type PostmortemTemplate,
} from '../../api/incidents';
import { formatDateTime } from '../../components/format';
import { useSubmit } from '../../hooks/useSubmit';
import { AdminCollection, AdminForm, fieldProblems } from './AdminCollection';
import { formFieldErrors } from './filters';

const LABELS = { name: 'Name', body: 'Template' };

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
  return (
    <AdminForm
      onSubmit={() => void save.run()}
      submitLabel={submitLabel}
      pending={save.pending}
      onCancel={onCancel}
      formError={save.error && !fields.name && !fields.body ? save.error : null}
      announce={fieldProblems(fields, LABELS, 'The template was not saved')}
    >
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
      <Checkbox label="The default template" checked={isDefault} onChange={(event) => setIsDefault(event.currentTarget.checked)} />
    </AdminForm>
  );
}

/** Admins edit the templates postmortems start from. */
export default function AdminTemplatesPage() {
  const queryClient = useQueryClient();
  const templates = useQuery({ queryKey: incidentsKeys.templates(), queryFn: listTemplates });
  const reload = () => queryClient.invalidateQueries({ queryKey: incidentsKeys.templates() });

  return (
    <AdminCollection<PostmortemTemplate>
      title="Postmortem templates"
      intro="The outline a new postmortem starts from: summary, impact, timeline, root causes, what went well and badly."
      items={templates.data}
      pending={templates.isPending}
      itemKey={(template) => template.id}
      itemName={(template) => template.name}
      loadingLabel="Loading the templates"
      empty="No templates yet."
      table={{
        label: 'Postmortem templates',
        testId: 'templates-table',
        columns: [
          {
            header: 'Name',
            td: { className: 'break-anywhere' },
            cell: (template) => (
              <>
                {template.name}
                {template.is_default ? (
                  <Badge ml={6} size="sm" variant="light">
                    Default
                  </Badge>
                ) : null}
              </>
            ),
          },
          { header: 'Updated', cell: (template) => formatDateTime(template.updated_at) },
        ],
      }}
      create={{
        title: 'New template',
        id: 'new-template-title',
        after: true,
        form: (notify) => (
          <TemplateForm
            submitLabel="Add template"
            onSubmit={async (values) => {
              const template = await createTemplate(values);
              notify(`Template “${template.name}” added.`);
              await reload();
            }}
          />
        ),
      }}
      edit={{
        title: 'Edit template',
        size: 'xl',
        form: (editing, done, cancel) => (
          <TemplateForm
            initial={editing}
            submitLabel="Save template"
            onCancel={cancel}
            onSubmit={async (values) => {
              const template = await updateTemplate(editing.id, values);
              done(`Template “${template.name}” saved.`);
              await reload();
            }}
          />
        ),
      }}
      remove={{
        verb: 'Delete',
        title: 'Delete template',
        question: (template) => (
          <>
            Delete the template <strong>{template.name}</strong>? Postmortems started from it keep their text.
          </>
        ),
        run: async (template) => {
          await deleteTemplate(template.id);
          void reload();
          return `Template “${template.name}” deleted.`;
        },
      }}
    />
  );
}
