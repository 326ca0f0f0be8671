import { useState, type FormEvent } from 'react';
import { useNavigate } from 'react-router';
import {
  Button,
  Checkbox,
  Group,
  Modal,
  NativeSelect,
  Radio,
  Stack,
  Text,
  Textarea,
  TextInput,
} from '@mantine/core';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import {
  declareIncident,
  incidentsKeys,
  listCategories,
  listTags,
  SEVERITIES,
  type Severity,
  type Visibility,
} from '../../api/incidents';
import { FormError } from '../../components/FormError';
import { useSubmit } from '../../hooks/useSubmit';
import { severityLabel } from './badges';
import { formFieldErrors } from './filters';

const TITLE_MAX = 200;

/** The "Declare an incident" dialog: opened from the shell on every page. */
export default function DeclareIncidentDialog({ opened, onClose }: { opened: boolean; onClose: () => void }) {
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const [title, setTitle] = useState('');
  const [description, setDescription] = useState('');
  const [severity, setSeverity] = useState<Severity>('SEV3');
  const [category, setCategory] = useState('');
  const [tags, setTags] = useState<string[]>([]);
  const [visibility, setVisibility] = useState<Visibility>('public');

  const categories = useQuery({
    queryKey: incidentsKeys.categories(),
    queryFn: listCategories,
    enabled: opened,
    meta: { quiet: true },
  });
  const tagList = useQuery({ queryKey: incidentsKeys.tags(), queryFn: listTags, enabled: opened, meta: { quiet: true } });

  const declare = useSubmit(async () => {
    const incident = await declareIncident({
      title,
      description,
      severity,
      category: category || null,
      tags,
      visibility,
    });
    queryClient.setQueryData(incidentsKeys.incident(incident.number), incident);
    void queryClient.invalidateQueries({ queryKey: incidentsKeys.lists() });
    setTitle('');
    setDescription('');
    setSeverity('SEV3');
    setCategory('');
    setTags([]);
    setVisibility('public');
    onClose();
    void navigate(`/incidents/${incident.number}`);
  });
  const fields = formFieldErrors(declare.error);

  function submit(event: FormEvent) {
    event.preventDefault();
    void declare.run();
  }

  return (
    <Modal opened={opened} onClose={onClose} title="Declare an incident" size="lg">
      <form onSubmit={submit} noValidate>
        <Stack gap="sm">
          <FormError error={declare.error} title="The incident was not declared" />
          <TextInput
            label="Title"
            description="What is broken, in a few words"
            required
            maxLength={TITLE_MAX}
            value={title}
            onChange={(event) => setTitle(event.currentTarget.value)}
            error={fields.title}
            data-autofocus
          />
          <Radio.Group
            label="Severity"
            required
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
            description="Markdown: what people see, what is affected, what is known"
            autosize
            minRows={4}
            maxRows={12}
            value={description}
            onChange={(event) => setDescription(event.currentTarget.value)}
            error={fields.description}
          />
          <NativeSelect
            label="Category"
            value={category}
            onChange={(event) => setCategory(event.currentTarget.value)}
            error={fields.category}
            data={[
              { value: '', label: 'No category' },
              ...(categories.data ?? []).map((c) => ({ value: c.name, label: c.name })),
            ]}
          />
          {tagList.data && tagList.data.length > 0 ? (
            <Checkbox.Group label="Tags" value={tags} onChange={setTags} error={fields.tags}>
              <Group gap="md" mt={4}>
                {tagList.data.map((tag) => (
                  <Checkbox key={tag.id} value={tag.name} label={tag.name} />
                ))}
              </Group>
            </Checkbox.Group>
          ) : fields.tags ? (
            <Text c="red" size="sm" role="alert">
              {fields.tags}
            </Text>
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
            <Button type="submit" color="red" loading={declare.pending}>
              Declare
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}
