import { useState, type FormEvent } from 'react';
import { Button, Checkbox, Group, Modal, NativeSelect, Radio, Stack, Textarea, TextInput } from '@mantine/core';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import {
  incidentsKeys,
  listCategories,
  listTags,
  SEVERITIES,
  updateIncident,
  type Incident,
  type IncidentUpdate,
  type Severity,
  type Visibility,
} from '../../api/incidents';
import { FormError } from '../../components/FormError';
import { useSubmit } from '../../hooks/useSubmit';
import { severityLabel } from './badges';
import { formFieldErrors } from './filters';

function sameSet(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((item) => b.includes(item));
}

/** The edits as a PATCH body: only what changed (each change is one timeline event). */
export function changedFields(incident: Incident, next: Required<Omit<IncidentUpdate, 'commander'>>): IncidentUpdate {
  const body: IncidentUpdate = {};
  if (next.title !== incident.title) body.title = next.title;
  if (next.description !== incident.description) body.description = next.description;
  if (next.severity !== incident.severity) body.severity = next.severity;
  if ((next.category ?? null) !== (incident.category ?? null)) body.category = next.category;
  if (!sameSet(next.tags ?? [], incident.tags)) body.tags = next.tags;
  if (next.visibility !== incident.visibility) body.visibility = next.visibility;
  return body;
}

/** The category choices: "No category" (sent as `category: null`, which clears it), every
 * category, and the incident's own even when the list has not loaded or no longer has it. */
export function categoryOptions(names: readonly string[], current: string | null | undefined): { value: string; label: string }[] {
  const all = Array.from(new Set([...names, ...(current ? [current] : [])]));
  return [{ value: '', label: 'No category' }, ...all.map((name) => ({ value: name, label: name }))];
}

/** Editors (commander, assignees, admins) change an incident's details. */
export function EditIncidentDialog({ incident, onClose, onSaved }: { incident: Incident; onClose: () => void; onSaved: () => void }) {
  const queryClient = useQueryClient();
  const [title, setTitle] = useState(incident.title);
  const [description, setDescription] = useState(incident.description);
  const [severity, setSeverity] = useState<Severity>(incident.severity);
  const [category, setCategory] = useState(incident.category ?? '');
  const [tags, setTags] = useState<string[]>(incident.tags);
  const [visibility, setVisibility] = useState<Visibility>(incident.visibility);
  const categories = useQuery({ queryKey: incidentsKeys.categories(), queryFn: listCategories, meta: { quiet: true } });
  const tagList = useQuery({ queryKey: incidentsKeys.tags(), queryFn: listTags, meta: { quiet: true } });

  const save = useSubmit(async () => {
    const body = changedFields(incident, {
      title,
      description,
      severity,
      category: category || null,
      tags,
      visibility,
    });
    if (Object.keys(body).length > 0) {
      const updated = await updateIncident(incident.number, body);
      queryClient.setQueryData(incidentsKeys.incident(incident.number), updated);
      void queryClient.invalidateQueries({ queryKey: incidentsKeys.timeline(incident.number) });
      void queryClient.invalidateQueries({ queryKey: incidentsKeys.lists() });
    }
    onSaved();
  });
  const fields = formFieldErrors(save.error);
  const tagNames = Array.from(new Set([...(tagList.data ?? []).map((tag) => tag.name), ...incident.tags]));

  function submit(event: FormEvent) {
    event.preventDefault();
    void save.run();
  }

  return (
    <Modal opened onClose={onClose} title="Edit incident" size="lg">
      <form onSubmit={submit} noValidate>
        <Stack gap="sm">
          <FormError error={save.error} title="The incident was not saved" />
          <TextInput
            label="Title"
            required
            maxLength={200}
            value={title}
            onChange={(event) => setTitle(event.currentTarget.value)}
            error={fields.title}
            data-autofocus
          />
          <Radio.Group
            label="Severity"
            value={severity}
            onChange={(value) => setSeverity(value as Severity)}
            error={fields.severity}
          >
            <Group gap="md" mt={4}>
              {SEVERITIES.map((value) => (
                <Radio key={value} value={value} label={severityLabel(value)} />
              ))}
            </Group>
          </Radio.Group>
          <Textarea
            label="Description"
            description="Markdown"
            autosize
            minRows={4}
            maxRows={14}
            value={description}
            onChange={(event) => setDescription(event.currentTarget.value)}
            error={fields.description}
          />
          <NativeSelect
            label="Category"
            value={category}
            onChange={(event) => setCategory(event.currentTarget.value)}
            error={fields.category}
            data={categoryOptions((categories.data ?? []).map((c) => c.name), incident.category)}
          />
          {tagNames.length > 0 ? (
            <Checkbox.Group label="Tags" value={tags} onChange={setTags} error={fields.tags}>
              <Group gap="md" mt={4}>
                {tagNames.map((name) => (
                  <Checkbox key={name} value={name} label={name} />
                ))}
              </Group>
            </Checkbox.Group>
          ) : null}
          <Radio.Group
            label="Visibility"
            value={visibility}
            onChange={(value) => setVisibility(value as Visibility)}
            error={fields.visibility}
          >
            <Stack gap={6} mt={4}>
              <Radio value="public" label="Public: every signed-in user sees it" />
              <Radio value="restricted" label="Restricted: only its participants and admins" />
            </Stack>
          </Radio.Group>
          <Group justify="flex-end" mt="sm">
            <Button variant="default" onClick={onClose}>
              Cancel
            </Button>
            <Button type="submit" loading={save.pending}>
              Save changes
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}
