import { useState, type FormEvent } from 'react';
import {
  Alert,
  Badge,
  Button,
  Checkbox,
  Code,
  Fieldset,
  Group,
  Modal,
  NativeSelect,
  Radio,
  Skeleton,
  Stack,
  Table,
  Text,
  TextInput,
  Title,
} from '@mantine/core';
import { useInfiniteQuery, useQuery, useQueryClient } from '@tanstack/react-query';
import {
  createIntegration,
  incidentsKeys,
  listCategories,
  listIntegrations,
  revokeIntegration,
  SEVERITIES,
  type Integration,
  type IntegrationCreated,
  type IntegrationKind,
  type Severity,
} from '../../api/incidents';
import { FormError } from '../../components/FormError';
import { formatDateTime } from '../../components/format';
import { usePageTitle } from '../../hooks/usePageTitle';
import { useSubmit } from '../../hooks/useSubmit';
import { severityLabel } from './badges';
import { formFieldErrors } from './filters';
import {
  DEFAULT_SEVERITY_ROWS,
  placeMapErrors,
  severityMapFromRows,
  SEVERITY_MAP_MAX,
  type SeverityRow,
} from './severityMap';

const KIND_LABEL: Record<IntegrationKind, string> = {
  alertmanager: 'Prometheus Alertmanager',
  generic: 'Generic JSON webhook',
};

/** Label value → severity, one row each; problems are said next to the row they concern. */
function SeverityMapEditor({
  rows,
  onChange,
  rowErrors,
  error,
}: {
  rows: SeverityRow[];
  onChange: (rows: SeverityRow[]) => void;
  rowErrors: Record<number, string>;
  error: string | null;
}) {
  const change = (index: number, row: Partial<SeverityRow>) =>
    onChange(rows.map((old, i) => (i === index ? { ...old, ...row } : old)));
  return (
    <Fieldset legend="Severity map" variant="unstyled" data-testid="severity-map">
      <Stack gap={6}>
        <Text size="xs" c="dimmed">
          Each value of the label and the severity it declares (case does not matter). A value that is itself SEV1..SEV4 needs
          no row.
        </Text>
        {rows.map((row, index) => (
          <Group key={index} align="flex-start" gap="xs" wrap="nowrap" data-testid="severity-map-row">
            <TextInput
              aria-label={`Label value ${index + 1}`}
              placeholder="e.g. critical"
              size="xs"
              autoComplete="off"
              spellCheck={false}
              value={row.value}
              onChange={(event) => change(index, { value: event.currentTarget.value })}
              error={rowErrors[index]}
              style={{ flex: 1 }}
            />
            <NativeSelect
              aria-label={`Severity of value ${index + 1}`}
              size="xs"
              value={row.severity}
              onChange={(event) => change(index, { severity: event.currentTarget.value as Severity })}
              data={SEVERITIES.map((value) => ({ value, label: severityLabel(value) }))}
            />
            <Button size="xs" variant="subtle" color="red" onClick={() => onChange(rows.filter((_, i) => i !== index))}>
              Remove <span className="visually-hidden">value {index + 1}</span>
            </Button>
          </Group>
        ))}
        {error ? (
          <Text size="xs" c="red" role="alert" data-testid="severity-map-error">
            {error}
          </Text>
        ) : null}
        <Group>
          <Button
            size="xs"
            variant="default"
            disabled={rows.length >= SEVERITY_MAP_MAX}
            onClick={() => onChange([...rows, { value: '', severity: 'SEV3' }])}
          >
            Add a value
          </Button>
        </Group>
      </Stack>
    </Fieldset>
  );
}

function NewIntegrationForm({ onCreated }: { onCreated: (created: IntegrationCreated) => void }) {
  const [name, setName] = useState('');
  const [kind, setKind] = useState<IntegrationKind>('alertmanager');
  const [defaultSeverity, setDefaultSeverity] = useState<Severity>('SEV3');
  const [resolve, setResolve] = useState(false);
  const [category, setCategory] = useState('');
  const [severityLabelName, setSeverityLabelName] = useState('severity');
  const [rows, setRows] = useState<SeverityRow[]>(() => DEFAULT_SEVERITY_ROWS.map((row) => ({ ...row })));
  const [checked, setChecked] = useState(false);
  const categories = useQuery({ queryKey: incidentsKeys.categories(), queryFn: listCategories, meta: { quiet: true } });
  const local = severityMapFromRows(rows);
  const create = useSubmit(async () => {
    const created = await createIntegration({
      name,
      kind,
      severity_label: severityLabelName,
      severity_map: local.map,
      default_severity: defaultSeverity,
      resolve_on_recovery: resolve,
      category: category || null,
    });
    setName('');
    setResolve(false);
    setCategory('');
    setSeverityLabelName('severity');
    setRows(DEFAULT_SEVERITY_ROWS.map((row) => ({ ...row })));
    setChecked(false);
    onCreated(created);
  });
  const fields = formFieldErrors(create.error);
  const server = placeMapErrors(create.error?.details ?? [], rows);
  // The editor's own checks show once a submit was tried; the server's until the next one.
  const rowErrors = checked ? { ...server.rowErrors, ...local.rowErrors } : server.rowErrors;
  const mapError = (checked ? local.error : null) ?? server.error;
  function submit(event: FormEvent) {
    event.preventDefault();
    setChecked(true);
    if (Object.keys(local.rowErrors).length || local.error) return;
    void create.run();
  }
  return (
    <form onSubmit={submit} noValidate>
      <Stack gap="sm" maw={640}>
        <FormError
          error={create.error && !fields.name && !fields.severity_label && !fields.severity_map ? create.error : null}
        />
        <TextInput
          label="Name"
          description="Where the alerts come from, e.g. “prod Alertmanager”"
          required
          maxLength={100}
          value={name}
          onChange={(event) => setName(event.currentTarget.value)}
          error={fields.name ?? (create.error?.status === 409 ? create.error.message : undefined)}
        />
        <Radio.Group label="Kind" value={kind} onChange={(value) => setKind(value as IntegrationKind)} error={fields.kind}>
          <Stack gap={6} mt={4}>
            <Radio value="alertmanager" label={KIND_LABEL.alertmanager} />
            <Radio value="generic" label={KIND_LABEL.generic} />
          </Stack>
        </Radio.Group>
        <Group align="flex-start" wrap="wrap">
          <NativeSelect
            label="Severity when no label says"
            value={defaultSeverity}
            onChange={(event) => setDefaultSeverity(event.currentTarget.value as Severity)}
            data={SEVERITIES.map((value) => ({ value, label: severityLabel(value) }))}
            error={fields.default_severity}
          />
          <NativeSelect
            label="Category of its incidents"
            value={category}
            onChange={(event) => setCategory(event.currentTarget.value)}
            data={[{ value: '', label: 'No category' }, ...(categories.data ?? []).map((c) => ({ value: c.name, label: c.name }))]}
            error={fields.category}
          />
        </Group>
        <TextInput
          label="Severity label"
          description="The alert label whose value picks the severity"
          required
          maxLength={64}
          autoComplete="off"
          spellCheck={false}
          value={severityLabelName}
          onChange={(event) => setSeverityLabelName(event.currentTarget.value)}
          error={fields.severity_label}
        />
        <SeverityMapEditor rows={rows} onChange={setRows} rowErrors={rowErrors} error={mapError} />
        <Checkbox
          label="Resolve the incident when its alerts resolve"
          checked={resolve}
          onChange={(event) => setResolve(event.currentTarget.checked)}
        />
        <Group>
          <Button type="submit" loading={create.pending}>
            Create integration
          </Button>
        </Group>
      </Stack>
    </form>
  );
}

/** Admins connect alerting tools: each integration has a token, shown once, on creation. */
export default function AdminIntegrationsPage() {
  usePageTitle('Alert integrations');
  const queryClient = useQueryClient();
  const [created, setCreated] = useState<IntegrationCreated | null>(null);
  const [revoking, setRevoking] = useState<Integration | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const list = useInfiniteQuery({
    queryKey: incidentsKeys.integrations(),
    queryFn: ({ pageParam }) => listIntegrations(pageParam),
    initialPageParam: null as string | null,
    getNextPageParam: (last) => last.next_cursor,
  });
  const reload = () => queryClient.invalidateQueries({ queryKey: incidentsKeys.integrations() });
  const revoke = useSubmit(async (integration: Integration) => {
    await revokeIntegration(integration.id);
    setRevoking(null);
    setNotice(`“${integration.name}” was revoked: its token is refused from now on.`);
    await reload();
  });
  const items = list.data?.pages.flatMap((page) => page.items) ?? [];

  return (
    <Stack gap="lg">
      <div>
        <Title order={1}>Alert integrations</Title>
        <Text c="dimmed" size="sm">
          Alerting tools that declare incidents: Prometheus Alertmanager or any tool that can post JSON.
        </Text>
      </div>
      <div role="status">
        {notice ? (
          <Alert color="green" variant="light" withCloseButton closeButtonLabel="Dismiss" onClose={() => setNotice(null)}>
            {notice}
          </Alert>
        ) : null}
      </div>
      {created ? (
        <Alert color="yellow" variant="light" title={`Token of “${created.name}”: copy it now`} data-testid="integration-token">
          <Stack gap="xs">
            <Text size="sm">
              It is shown this once and cannot be shown again. Configure the sender to post to{' '}
              <Code>{created.url}</Code> with the header <Code>Authorization: Bearer &lt;token&gt;</Code>.
            </Text>
            <TextInput label="Token" readOnly value={created.token} onFocus={(event) => event.currentTarget.select()} ff="monospace" />
            <Group>
              <Button size="xs" variant="default" onClick={() => setCreated(null)}>
                I have copied it
              </Button>
            </Group>
          </Stack>
        </Alert>
      ) : null}
      <section aria-labelledby="new-integration-title">
        <Title order={2} size="h4" id="new-integration-title" mb="xs">
          New integration
        </Title>
        <NewIntegrationForm
          onCreated={(integration) => {
            setNotice(null);
            setCreated(integration);
            void reload();
          }}
        />
      </section>
      {list.isPending ? (
        <Skeleton height={80} aria-label="Loading the integrations" />
      ) : items.length ? (
        <Table.ScrollContainer minWidth={760}>
          <Table verticalSpacing="sm" aria-label="Alert integrations" data-testid="integrations-table">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Name</Table.Th>
                <Table.Th>Kind</Table.Th>
                <Table.Th>Severity</Table.Th>
                <Table.Th>Token</Table.Th>
                <Table.Th>Last used</Table.Th>
                <Table.Th>State</Table.Th>
                <Table.Th>
                  <span className="visually-hidden">Actions</span>
                </Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {items.map((integration) => (
                <Table.Tr key={integration.id}>
                  <Table.Td className="break-anywhere">{integration.name}</Table.Td>
                  <Table.Td>{KIND_LABEL[integration.kind]}</Table.Td>
                  <Table.Td className="break-anywhere">
                    <Text size="xs">
                      <Code>{integration.severity_label}</Code>:{' '}
                      {Object.entries(integration.severity_map)
                        .map(([value, severity]) => `${value} → ${severity}`)
                        .join(', ') || 'SEV1..SEV4 only'}
                      ; otherwise {integration.default_severity}
                    </Text>
                  </Table.Td>
                  <Table.Td ff="monospace">{integration.token_prefix}…</Table.Td>
                  <Table.Td>{formatDateTime(integration.last_used_at, 'Never')}</Table.Td>
                  <Table.Td>
                    <Badge variant="light" color={integration.active ? 'green' : 'gray'}>
                      {integration.active ? 'Active' : 'Revoked'}
                    </Badge>
                  </Table.Td>
                  <Table.Td>
                    {integration.active ? (
                      <Button size="compact-xs" variant="subtle" color="red" onClick={() => setRevoking(integration)}>
                        Revoke <span className="visually-hidden">{integration.name}</span>
                      </Button>
                    ) : null}
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      ) : list.data ? (
        <Text size="sm" c="dimmed">
          No integrations yet.
        </Text>
      ) : null}
      {list.hasNextPage ? (
        <Group>
          <Button variant="default" onClick={() => void list.fetchNextPage()} loading={list.isFetchingNextPage}>
            Load more
          </Button>
        </Group>
      ) : null}
      <Modal opened={revoking !== null} onClose={() => setRevoking(null)} title="Revoke integration">
        <Stack gap="md">
          <FormError error={revoke.error} />
          <Text size="sm" className="break-anywhere">
            Revoke <strong>{revoking?.name}</strong>? Its token is refused from then on; the incidents it declared stay.
          </Text>
          <Group justify="flex-end">
            <Button variant="default" onClick={() => setRevoking(null)}>
              Cancel
            </Button>
            <Button color="red" loading={revoke.pending} onClick={() => revoking && void revoke.run(revoking)}>
              Revoke integration
            </Button>
          </Group>
        </Stack>
      </Modal>
    </Stack>
  );
}
