import { useState, type FormEvent } from 'react';
import { Badge, Button, Checkbox, Group, Modal, Skeleton, Stack, Table, Text, TextInput, Title } from '@mantine/core';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import {
  createWebhook,
  deleteWebhook,
  incidentsKeys,
  listWebhooks,
  WEBHOOK_EVENTS,
  type WebhookEndpoint,
} from '../../api/incidents';
import { FormError } from '../../components/FormError';
import { formatDateTime } from '../../components/format';
import { Notice } from '../../components/Notice';
import { usePageTitle } from '../../hooks/usePageTitle';
import { useSubmit } from '../../hooks/useSubmit';
import { formFieldErrors } from './filters';
import { WebhookDeliveriesDialog } from './WebhookDeliveries';

/** Admins send signed incident events to other systems. */
export default function AdminWebhooksPage() {
  usePageTitle('Incident webhooks');
  const queryClient = useQueryClient();
  const hooks = useQuery({ queryKey: incidentsKeys.webhooks(), queryFn: listWebhooks });
  const [url, setUrl] = useState('');
  const [events, setEvents] = useState<string[]>([]);
  const [deleting, setDeleting] = useState<WebhookEndpoint | null>(null);
  const [history, setHistory] = useState<WebhookEndpoint | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const reload = () => queryClient.invalidateQueries({ queryKey: incidentsKeys.webhooks() });
  const create = useSubmit(async () => {
    const hook = await createWebhook(url, events);
    setUrl('');
    setEvents([]);
    setNotice(`Events now go to ${hook.url}.`);
    await reload();
  });
  const remove = useSubmit(async (hook: WebhookEndpoint) => {
    await deleteWebhook(hook.id);
    setDeleting(null);
    setNotice(`${hook.url} gets no more events.`);
    await reload();
  });
  const fields = formFieldErrors(create.error);

  function submit(event: FormEvent) {
    event.preventDefault();
    setNotice(null);
    void create.run();
  }

  return (
    <Stack gap="lg">
      <div>
        <Title order={1}>Incident webhooks</Title>
        <Text c="dimmed" size="sm">
          Signed POSTs to other systems when incidents change, retried when they fail.
        </Text>
      </div>
      <Notice notice={notice} onDismiss={() => setNotice(null)} />
      <section aria-labelledby="new-webhook-title">
        <Title order={2} size="h4" id="new-webhook-title" mb="xs">
          New webhook
        </Title>
        <form onSubmit={submit} noValidate>
          <Stack gap="sm" maw={640}>
            <FormError error={create.error && !fields.url && !fields.events ? create.error : null} />
            <TextInput
              label="URL"
              description="http(s) address the events are posted to"
              required
              type="url"
              value={url}
              onChange={(event) => setUrl(event.currentTarget.value)}
              error={fields.url}
            />
            <Checkbox.Group
              label="Events"
              description="None chosen: all of them"
              value={events}
              onChange={setEvents}
              error={fields.events}
            >
              <Group gap="md" mt={4}>
                {WEBHOOK_EVENTS.map((name) => (
                  <Checkbox key={name} value={name} label={name} />
                ))}
              </Group>
            </Checkbox.Group>
            <Group>
              <Button type="submit" loading={create.pending}>
                Add webhook
              </Button>
            </Group>
          </Stack>
        </form>
      </section>
      {hooks.isPending ? (
        <Skeleton height={80} aria-label="Loading the webhooks" />
      ) : hooks.data && hooks.data.length ? (
        <Table.ScrollContainer minWidth={640}>
          <Table verticalSpacing="sm" aria-label="Incident webhooks" data-testid="webhooks-table">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>URL</Table.Th>
                <Table.Th>Events</Table.Th>
                <Table.Th>State</Table.Th>
                <Table.Th>Created</Table.Th>
                <Table.Th>
                  <span className="visually-hidden">Actions</span>
                </Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {hooks.data.map((hook) => (
                <Table.Tr key={hook.id}>
                  <Table.Td className="break-anywhere" ff="monospace">
                    {hook.url}
                  </Table.Td>
                  <Table.Td>{hook.events.length ? hook.events.join(', ') : 'All events'}</Table.Td>
                  <Table.Td>
                    <Badge variant="light" color={hook.is_active ? 'green' : 'gray'}>
                      {hook.is_active ? 'Active' : 'Off'}
                    </Badge>
                  </Table.Td>
                  <Table.Td>{formatDateTime(hook.created_at)}</Table.Td>
                  <Table.Td>
                    <Group gap={4} wrap="nowrap">
                      <Button size="compact-xs" variant="subtle" onClick={() => setHistory(hook)}>
                        Deliveries <span className="visually-hidden">to {hook.url}</span>
                      </Button>
                      <Button size="compact-xs" variant="subtle" color="red" onClick={() => setDeleting(hook)}>
                        Delete <span className="visually-hidden">{hook.url}</span>
                      </Button>
                    </Group>
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      ) : hooks.data ? (
        <Text size="sm" c="dimmed">
          No webhooks yet.
        </Text>
      ) : null}
      <WebhookDeliveriesDialog endpoint={history} onClose={() => setHistory(null)} />
      <Modal opened={deleting !== null} onClose={() => setDeleting(null)} title="Delete webhook">
        <Stack gap="md">
          <FormError error={remove.error} />
          <Text size="sm" className="break-anywhere">
            Stop sending events to <strong>{deleting?.url}</strong>?
          </Text>
          <Group justify="flex-end">
            <Button variant="default" onClick={() => setDeleting(null)}>
              Cancel
            </Button>
            <Button color="red" loading={remove.pending} onClick={() => deleting && void remove.run(deleting)}>
              Delete webhook
            </Button>
          </Group>
        </Stack>
      </Modal>
    </Stack>
  );
}
