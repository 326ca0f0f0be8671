import { useRef, useState, type FormEvent } from 'react';
import { Link } from 'react-router';
import {
  Alert,
  Anchor,
  Badge,
  Button,
  Card,
  Grid,
  Group,
  List,
  Skeleton,
  Stack,
  Text,
  TextInput,
  Title,
} from '@mantine/core';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import {
  addAssignee,
  getIncident,
  incidentKey,
  incidentsKeys,
  removeAssignee,
  transitionIncident,
  unwatchIncident,
  updateIncident,
  watchIncident,
  type Incident,
  type IncidentStatus,
  type UserRef,
} from '../../api/incidents';
import { FormError } from '../../components/FormError';
import { displayName, formatDateTime } from '../../components/format';
import { Notice } from '../../components/Notice';
import { usePageTitle } from '../../hooks/usePageTitle';
import { useSubmit } from '../../hooks/useSubmit';
import { IncidentStatusBadge, SeverityBadge, statusLabel } from './badges';
import { Attachments } from './Attachments';
import { Comments } from './Comments';
import { EditIncidentDialog } from './EditIncidentDialog';
import { formFieldErrors } from './filters';
import { IncidentFollowUps } from './IncidentFollowUps';
import { ServerHtml } from './Markdown';
import { Timeline } from './Timeline';
import { WarRoomButton } from '../chat/WarRoomButton';
import { useLiveTopic } from '../../live/useLiveTopic';

const WORKING: ReadonlySet<IncidentStatus> = new Set(['investigating', 'identified', 'monitoring']);

/** The words on a transition button: what the move does. */
export function transitionLabel(from: IncidentStatus, to: IncidentStatus): string {
  if (to === 'resolved') return 'Resolve';
  if (to === 'closed') return 'Close';
  if ((from === 'resolved' || from === 'closed') && to === 'investigating') return 'Reopen';
  if (from === 'triage' && WORKING.has(to)) return `Acknowledge: ${statusLabel(to)}`;
  return `Move to ${statusLabel(to)}`;
}

export function IncidentNotFound({ number }: { number?: number }) {
  usePageTitle('Incident not found');
  return (
    <Stack gap="sm">
      <Title order={1}>Incident not found</Title>
      <Text>
        {number ? `There is no incident ${incidentKey(number)}` : 'There is no incident at this address'}, or
        it is restricted to its participants.
      </Text>
      <Anchor component={Link} to="/incidents">
        Back to the incidents
      </Anchor>
    </Stack>
  );
}

function person(user: UserRef | null | undefined): string {
  return user ? displayName(user) : '—';
}

/** Runs an action that answers the incident, and puts the answer in the cache. */
function useIncidentAction<A extends unknown[]>(number: number, action: (...args: A) => Promise<Incident>) {
  const queryClient = useQueryClient();
  return useSubmit(async (...args: A) => {
    const incident = await action(...args);
    queryClient.setQueryData(incidentsKeys.incident(number), incident);
    void queryClient.invalidateQueries({ queryKey: incidentsKeys.timeline(number) });
    void queryClient.invalidateQueries({ queryKey: incidentsKeys.lists() });
    return incident;
  });
}

function UsernameForm({
  label,
  button,
  onSubmit,
  error,
  pending,
}: {
  label: string;
  button: string;
  onSubmit: (username: string) => Promise<boolean>;
  error: string | undefined;
  pending: boolean;
}) {
  const [username, setUsername] = useState('');
  async function submit(event: FormEvent) {
    event.preventDefault();
    if (await onSubmit(username.trim())) setUsername('');
  }
  return (
    <form onSubmit={(event) => void submit(event)} noValidate>
      <Group align="flex-start" gap="xs" wrap="nowrap">
        <TextInput
          label={label}
          size="xs"
          autoComplete="off"
          autoCapitalize="none"
          spellCheck={false}
          value={username}
          onChange={(event) => setUsername(event.currentTarget.value)}
          error={error}
          style={{ flex: 1 }}
        />
        <Button type="submit" size="xs" variant="default" mt={22} loading={pending}>
          {button}
        </Button>
      </Group>
    </form>
  );
}

function People({ incident, onNotice }: { incident: Incident; onNotice: (text: string) => void }) {
  const { number } = incident;
  const watch = useIncidentAction(number, () => (incident.watching ? unwatchIncident(number) : watchIncident(number)));
  const assign = useIncidentAction(number, (username: string) => addAssignee(number, username));
  const unassign = useIncidentAction(number, (username: string) => removeAssignee(number, username));
  const command = useIncidentAction(number, (username: string) =>
    updateIncident(number, { commander: username || null }),
  );
  const assignFields = formFieldErrors(assign.error);
  const commandFields = formFieldErrors(command.error);

  return (
    <Card withBorder radius="md" padding="md" component="section" aria-labelledby="people-title">
      <Stack gap="sm">
        <Title order={2} size="h4" id="people-title">
          People
        </Title>
        <FormError error={watch.error ?? unassign.error} />
        <div>
          <Text size="sm" fw={600}>
            Commander
          </Text>
          <Text size="sm" data-testid="commander">
            {incident.commander ? person(incident.commander) : 'Nobody yet'}
          </Text>
        </div>
        {incident.can_edit ? (
          <UsernameForm
            label="Set commander (username)"
            button="Set"
            pending={command.pending}
            error={commandFields.commander ?? (command.error && !commandFields.commander ? command.error.message : undefined)}
            onSubmit={async (username) => {
              const ok = await command.run(username);
              if (ok) onNotice(username ? `${username} is now the commander.` : 'The commander was removed.');
              return ok;
            }}
          />
        ) : null}
        <div>
          <Text size="sm" fw={600} id="assignees-title">
            Assignees
          </Text>
          {incident.assignees.length ? (
            <List size="sm" aria-labelledby="assignees-title" data-testid="assignees">
              {incident.assignees.map((user) => (
                <List.Item key={user.id}>
                  <Group gap="xs" wrap="nowrap">
                    <span>{person(user)}</span>
                    {incident.can_edit ? (
                      <Button
                        size="compact-xs"
                        variant="subtle"
                        loading={unassign.pending}
                        onClick={() =>
                          void unassign.run(user.username).then((ok) => ok && onNotice(`${user.username} was unassigned.`))
                        }
                      >
                        Unassign <span className="visually-hidden">{user.username}</span>
                      </Button>
                    ) : null}
                  </Group>
                </List.Item>
              ))}
            </List>
          ) : (
            <Text size="sm" c="dimmed">
              Nobody assigned.
            </Text>
          )}
        </div>
        {incident.can_edit ? (
          <UsernameForm
            label="Assign (username)"
            button="Assign"
            pending={assign.pending}
            error={assignFields.username ?? (assign.error ? assign.error.message : undefined)}
            onSubmit={async (username) => {
              const ok = await assign.run(username);
              if (ok) onNotice(`${username} was assigned.`);
              return ok;
            }}
          />
        ) : null}
        <div>
          <Text size="sm" fw={600} id="watchers-title">
            Watchers
          </Text>
          {incident.watchers.length ? (
            <List size="sm" aria-labelledby="watchers-title" data-testid="watchers">
              {incident.watchers.map((user) => (
                <List.Item key={user.id}>{person(user)}</List.Item>
              ))}
            </List>
          ) : (
            <Text size="sm" c="dimmed">
              Nobody watches it.
            </Text>
          )}
        </div>
        <Group>
          <Button
            size="xs"
            variant="default"
            loading={watch.pending}
            onClick={() =>
              void watch
                .run()
                .then((ok) => ok && onNotice(incident.watching ? 'You stopped watching.' : 'You are watching it.'))
            }
          >
            {incident.watching ? 'Stop watching' : 'Watch'}
          </Button>
        </Group>
      </Stack>
    </Card>
  );
}

function Workflow({ incident, onNotice }: { incident: Incident; onNotice: (text: string) => void }) {
  const { number } = incident;
  const status = useRef<HTMLDivElement>(null);
  const move = useIncidentAction(number, (to: IncidentStatus) => transitionIncident(number, to));

  async function go(to: IncidentStatus) {
    if (await move.run(to)) {
      onNotice(`${incidentKey(number)} is now ${statusLabel(to)}.`);
      // The button pressed is gone with the old state: the focus goes to the new status.
      status.current?.focus();
    }
  }

  return (
    <section aria-labelledby="workflow-title">
      <Group gap="sm" align="center" mb="xs">
        <Title order={2} size="h4" id="workflow-title">
          Status
        </Title>
        <div ref={status} tabIndex={-1} data-testid="incident-status">
          <IncidentStatusBadge status={incident.status} size="lg" />
        </div>
      </Group>
      <FormError error={move.error} title="The status did not change" />
      {incident.can_edit ? (
        incident.allowed_transitions.length ? (
          <Group gap="xs" role="group" aria-labelledby="workflow-title" data-testid="transitions">
            {incident.allowed_transitions.map((to) => (
              <Button
                key={to}
                size="xs"
                variant={to === 'resolved' ? 'filled' : 'default'}
                color={to === 'resolved' ? 'green' : undefined}
                disabled={move.pending}
                onClick={() => void go(to)}
              >
                {transitionLabel(incident.status, to)}
              </Button>
            ))}
          </Group>
        ) : null
      ) : (
        <Text size="sm" c="dimmed">
          Only its commander, its assignees and admins can change its status.
        </Text>
      )}
    </section>
  );
}

export default function IncidentDetailPage({ number }: { number: number }) {
  const query = useQuery({
    queryKey: incidentsKeys.incident(number),
    queryFn: () => getIncident(number),
    // A missing incident is this page's own message, not the global banner.
    meta: { quiet: true },
  });
  // A change pushed over the shared socket reads the incident (and its comments, timeline) again.
  const queryClient = useQueryClient();
  useLiveTopic(`incidents:${number}`, () => void queryClient.invalidateQueries({ queryKey: incidentsKeys.incident(number) }));
  const [notice, setNotice] = useState<string | null>(null);
  const [editing, setEditing] = useState(false);
  const incident = query.data;
  usePageTitle(incident ? `${incidentKey(number)} ${incident.title}` : incidentKey(number));

  if (query.isPending) {
    return (
      <Stack gap="xs" aria-busy="true" aria-label="Loading the incident">
        <Skeleton height={28} width="40%" />
        <Skeleton height={18} />
        <Skeleton height={120} />
      </Stack>
    );
  }
  if (!incident) {
    if (query.error?.status === 404) return <IncidentNotFound number={number} />;
    return (
      <Alert color="red" variant="light" title="The incident could not be loaded" role="alert">
        {query.error?.message}
      </Alert>
    );
  }

  return (
    <Stack gap="lg">
      <Anchor component={Link} to="/incidents" size="sm">
        All incidents
      </Anchor>
      <div>
        <Group gap="xs" mb={4}>
          <Text ff="monospace" fw={600} data-testid="incident-key">
            {incidentKey(incident.number)}
          </Text>
          <SeverityBadge severity={incident.severity} />
          <IncidentStatusBadge status={incident.status} />
          {incident.visibility === 'restricted' ? (
            <Badge variant="outline" color="gray">
              Restricted
            </Badge>
          ) : null}
        </Group>
        <Group justify="space-between" align="flex-start" wrap="nowrap">
          <Title order={1} className="break-anywhere">
            {incident.title}
          </Title>
          <Group gap="xs" wrap="nowrap" style={{ flexShrink: 0 }}>
            <WarRoomButton number={incident.number} roomId={(incident as { war_room_id?: string | null }).war_room_id ?? null} />
            <Button variant="default" size="xs" component={Link} to={`/incidents/${incident.number}/postmortem`}>
              Postmortem
            </Button>
            {incident.can_edit ? (
              <Button variant="default" size="xs" onClick={() => setEditing(true)}>
                Edit incident
              </Button>
            ) : null}
          </Group>
        </Group>
        <Text size="sm" c="dimmed" mt={4}>
          Declared {formatDateTime(incident.declared_at)}
          {incident.reporter ? ` by ${person(incident.reporter)}` : ` (${incident.source})`}
          {incident.category ? ` · ${incident.category}` : ''}
          {incident.tags.length ? ` · ${incident.tags.map((tag) => `#${tag}`).join(' ')}` : ''}
        </Text>
      </div>
      <Notice notice={notice} onDismiss={() => setNotice(null)} />
      <Workflow incident={incident} onNotice={setNotice} />
      {editing ? (
        <EditIncidentDialog
          incident={incident}
          onClose={() => setEditing(false)}
          onSaved={() => {
            setEditing(false);
            setNotice('The incident was saved.');
          }}
        />
      ) : null}
      <Grid gap="lg">
        <Grid.Col span={{ base: 12, md: 8 }}>
          <Stack gap="lg">
            <section aria-labelledby="description-title">
              <Title order={2} size="h4" id="description-title" mb="xs">
                Description
              </Title>
              {incident.description_html ? (
                <ServerHtml html={incident.description_html} testId="incident-description" />
              ) : (
                <Text size="sm" c="dimmed">
                  No description.
                </Text>
              )}
            </section>
            <Timeline incident={incident} />
            <Attachments number={incident.number} />
            <Comments number={incident.number} />
          </Stack>
        </Grid.Col>
        <Grid.Col span={{ base: 12, md: 4 }}>
          <Stack gap="md">
            <People incident={incident} onNotice={setNotice} />
            <IncidentFollowUps incident={incident} onNotice={setNotice} />
            <Card withBorder radius="md" padding="md" component="section" aria-labelledby="times-title">
              <Title order={2} size="h4" id="times-title" mb="xs">
                Times
              </Title>
              <Stack gap={2}>
                {(
                  [
                    ['Declared', incident.declared_at],
                    ['Acknowledged', incident.acknowledged_at],
                    ['Mitigated', incident.mitigated_at],
                    ['Resolved', incident.resolved_at],
                    ['Closed', incident.closed_at],
                  ] as const
                ).map(([label, value]) => (
                  <Text size="sm" key={label}>
                    {label}: {formatDateTime(value)}
                  </Text>
                ))}
              </Stack>
            </Card>
          </Stack>
        </Grid.Col>
      </Grid>
    </Stack>
  );
}
