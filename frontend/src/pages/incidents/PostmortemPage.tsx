import { useState, type FormEvent } from 'react';
import { Link } from 'react-router';
import { Anchor, Badge, Button, Group, Skeleton, Stack, Tabs, Text, Textarea, Title } from '@mantine/core';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import {
  getIncident,
  getPostmortem,
  incidentKey,
  incidentsKeys,
  savePostmortem,
  startPostmortem,
  transitionPostmortem,
  type Postmortem,
  type PostmortemStatus,
} from '../../api/incidents';
import { FormError } from '../../components/FormError';
import { formatDateTime } from '../../components/format';
import { Notice } from '../../components/Notice';
import { usePageTitle } from '../../hooks/usePageTitle';
import { useSubmit } from '../../hooks/useSubmit';
import { IncidentNotFound } from './IncidentDetailPage';
import { ServerHtml } from './Markdown';

const STATUS: Record<PostmortemStatus, { label: string; color: string }> = {
  draft: { label: 'Draft', color: 'gray' },
  in_review: { label: 'In review', color: 'blue' },
  published: { label: 'Published', color: 'green' },
};

const MOVE: Record<PostmortemStatus, string> = {
  draft: 'Back to draft',
  in_review: 'Send for review',
  published: 'Publish',
};

function Editor({ number, postmortem, canEdit }: { number: number; postmortem: Postmortem; canEdit: boolean }) {
  const queryClient = useQueryClient();
  const [body, setBody] = useState(postmortem.body);
  const [tab, setTab] = useState<string | null>(canEdit ? 'write' : 'preview');
  const [notice, setNotice] = useState<string | null>(null);
  const put = (saved: Postmortem) => queryClient.setQueryData(incidentsKeys.postmortem(number), saved);
  const save = useSubmit(async () => {
    put(await savePostmortem(number, body));
    setNotice('Saved.');
  });
  const move = useSubmit(async (to: PostmortemStatus) => {
    put(await transitionPostmortem(number, to));
    setNotice(`The postmortem is now ${STATUS[to].label.toLowerCase()}.`);
  });
  const dirty = body !== postmortem.body;

  function submit(event: FormEvent) {
    event.preventDefault();
    void save.run();
  }

  return (
    <Stack gap="md">
      <Group gap="xs">
        <Text size="sm">Status:</Text>
        <Badge variant="light" color={STATUS[postmortem.status].color} data-testid="postmortem-status">
          {STATUS[postmortem.status].label}
        </Badge>
        <Text size="xs" c="dimmed">
          Updated {formatDateTime(postmortem.updated_at)}
          {postmortem.published_at ? ` · published ${formatDateTime(postmortem.published_at)}` : ''}
        </Text>
      </Group>
      <Notice notice={notice} onDismiss={() => setNotice(null)} />
      <FormError error={save.error ?? move.error} />
      {canEdit && postmortem.allowed_transitions.length ? (
        <Group gap="xs" role="group" aria-label="Postmortem status">
          {postmortem.allowed_transitions.map((to) => (
            <Button key={to} size="xs" variant="default" disabled={move.pending || dirty} onClick={() => void move.run(to)}>
              {MOVE[to]}
            </Button>
          ))}
          {dirty ? (
            <Text size="xs" c="dimmed">
              Save your changes first.
            </Text>
          ) : null}
        </Group>
      ) : null}
      <Tabs value={tab} onChange={setTab}>
        <Tabs.List>
          {canEdit ? <Tabs.Tab value="write">Write</Tabs.Tab> : null}
          <Tabs.Tab value="preview">Preview</Tabs.Tab>
        </Tabs.List>
        {canEdit ? (
          <Tabs.Panel value="write" pt="sm">
            <form onSubmit={submit} noValidate>
              <Stack gap="xs">
                <Textarea
                  label="Postmortem"
                  description="Markdown: summary, impact, timeline, root causes, what went well and badly"
                  autosize
                  minRows={12}
                  maxRows={30}
                  value={body}
                  onChange={(event) => setBody(event.currentTarget.value)}
                />
                <Group>
                  <Button type="submit" loading={save.pending} disabled={!dirty}>
                    Save
                  </Button>
                </Group>
              </Stack>
            </form>
          </Tabs.Panel>
        ) : null}
        <Tabs.Panel value="preview" pt="sm">
          {dirty ? (
            <Text size="sm" c="dimmed" mb="xs">
              The preview is the last saved text, rendered by the server; save to see your changes.
            </Text>
          ) : null}
          <ServerHtml html={postmortem.body_html} testId="postmortem-preview" />
        </Tabs.Panel>
      </Tabs>
    </Stack>
  );
}

/** An incident's postmortem: start it from the template, write it, review and publish it. */
export default function PostmortemPage({ number }: { number: number }) {
  const queryClient = useQueryClient();
  usePageTitle(`Postmortem of ${incidentKey(number)}`);
  const incident = useQuery({ queryKey: incidentsKeys.incident(number), queryFn: () => getIncident(number), meta: { quiet: true } });
  const postmortem = useQuery({
    queryKey: incidentsKeys.postmortem(number),
    queryFn: () => getPostmortem(number),
    enabled: incident.isSuccess,
    meta: { quiet: true },
  });
  const start = useSubmit(async () => {
    queryClient.setQueryData(incidentsKeys.postmortem(number), await startPostmortem(number));
  });

  if (incident.isError && incident.error.status === 404) return <IncidentNotFound number={number} />;
  const canEdit = incident.data?.can_edit ?? false;
  return (
    <Stack gap="lg">
      <Anchor component={Link} to={`/incidents/${number}`} size="sm">
        Back to {incidentKey(number)}
      </Anchor>
      <div>
        <Title order={1}>Postmortem of {incidentKey(number)}</Title>
        {incident.data ? (
          <Text c="dimmed" size="sm" className="break-anywhere">
            {incident.data.title}
          </Text>
        ) : null}
      </div>
      {incident.isPending || postmortem.isPending ? (
        <Skeleton height={160} aria-label="Loading the postmortem" />
      ) : postmortem.data ? (
        <Editor number={number} postmortem={postmortem.data} canEdit={canEdit} />
      ) : postmortem.error?.status === 404 ? (
        <Stack gap="sm" align="flex-start">
          <Text>There is no postmortem yet.</Text>
          <FormError error={start.error} />
          {canEdit ? (
            <Button onClick={() => void start.run()} loading={start.pending}>
              Start the postmortem
            </Button>
          ) : (
            <Text size="sm" c="dimmed">
              Its commander, assignees or an admin can start it.
            </Text>
          )}
        </Stack>
      ) : (
        <FormError error={postmortem.error ?? incident.error} title="The postmortem could not be loaded" />
      )}
    </Stack>
  );
}
