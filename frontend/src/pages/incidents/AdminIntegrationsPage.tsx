import { useState } from 'react';
import {
  Alert,
  Badge,
  Button,
  Checkbox,
  Code,
  Fieldset,
  Group,
  NativeSelect,
  Radio,
  Stack,
  Text,
  TextInput,
} from '@mantine/core';
import { useInfiniteQuery, useQuery, useQueryClient } from '@tanstack/react-query';
import {
  createIntegration,
  incidentsKeys,
  listCategories,
  listIntegrations,
  revokeIntegration,
  SEVERITIES,
  updateIntegration,
  type Integration,
  type IntegrationCreated,
  type IntegrationKind,
  type Severity,
} from '../../api/incidents';
import { formatDateTime } from '../../components/format';
import { useSubmit } from '../../hooks/useSubmit';
import { AdminCollection, AdminForm, fieldProblems } from './AdminCollection';
import { severityLabel } from './badges';
import { formFieldErrors } from './filters';
import {
  DEFAULT_SEVERITY_ROWS,
  placeMapErrors,
  rowsFromSeverityMap,
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

const LABELS = {
  name: 'Name',
  kind: 'Kind',
  default_severity: 'Severity when no label says',
  category: 'Category of its incidents',
  severity_label: 'Severity label',
  severity_map: 'Severity map',
  resolve_on_recovery: 'Resolve the incident when its alerts resolve',
};

/** What the form sends, on creation and on an edit alike (the kind only on creation). */
export interface IntegrationValues {
  name: string;
  severity_label: string;
  severity_map: Record<string, Severity>;
  default_severity: Severity;
  resolve_on_recovery: boolean;
  category: string | null;
}

/**
 * An integration's settings: a new one (with its kind) or an existing one (`initial`: its kind
 * and token stay). The severity map is edited row by row; the editor's own checks (a blank or
 * repeated value) stop the submit, the API's refusals are placed next to their rows.
 */
function IntegrationForm({
  initial,
  submitLabel,
  onSubmit,
  onCancel,
}: {
  initial?: Integration;
  submitLabel: string;
  onSubmit: (values: IntegrationValues, kind: IntegrationKind) => Promise<unknown>;
  onCancel?: () => void;
}) {
  const [name, setName] = useState(initial?.name ?? '');
  const [kind, setKind] = useState<IntegrationKind>(initial?.kind ?? 'alertmanager');
  const [defaultSeverity, setDefaultSeverity] = useState<Severity>(initial?.default_severity ?? 'SEV3');
  const [resolve, setResolve] = useState(initial?.resolve_on_recovery ?? false);
  const [category, setCategory] = useState(initial?.category ?? '');
  const [severityLabelName, setSeverityLabelName] = useState(initial?.severity_label ?? 'severity');
  const [rows, setRows] = useState<SeverityRow[]>(() =>
    initial ? rowsFromSeverityMap(initial.severity_map) : DEFAULT_SEVERITY_ROWS.map((row) => ({ ...row })),
  );
  const [checked, setChecked] = useState(false);
  const categories = useQuery({ queryKey: incidentsKeys.categories(), queryFn: listCategories, meta: { quiet: true } });
  const local = severityMapFromRows(rows);
  const save = useSubmit(async () => {
    await onSubmit(
      {
        name,
        severity_label: severityLabelName,
        severity_map: local.map,
        default_severity: defaultSeverity,
        resolve_on_recovery: resolve,
        category: category || null,
      },
      kind,
    );
    if (!initial) {
      setName('');
      setResolve(false);
      setCategory('');
      setSeverityLabelName('severity');
      setRows(DEFAULT_SEVERITY_ROWS.map((row) => ({ ...row })));
      setChecked(false);
    }
  });
  const fields = formFieldErrors(save.error);
  const server = placeMapErrors(save.error?.details ?? [], rows);
  // The editor's own checks show once a submit was tried; the server's until the next one.
  const rowErrors = checked ? { ...server.rowErrors, ...local.rowErrors } : server.rowErrors;
  const mapError = (checked ? local.error : null) ?? server.error;
  const localProblem = checked && (Object.keys(local.rowErrors).length > 0 || local.error !== null);
  const what = initial ? 'The integration was not saved' : 'The integration was not created';
  // The integration's own category is a choice while the list loads (a select shows only its options).
  const categoryNames = (categories.data ?? []).map((c) => c.name);
  if (initial?.category && !categoryNames.includes(initial.category)) categoryNames.push(initial.category);
  function submit() {
    setChecked(true);
    if (Object.keys(local.rowErrors).length || local.error) return;
    void save.run();
  }
  return (
    <AdminForm
      onSubmit={submit}
      submitLabel={submitLabel}
      pending={save.pending}
      onCancel={onCancel}
      maw={640}
      formError={save.error && !fields.name && !fields.severity_label && !fields.severity_map ? save.error : null}
      announce={
        localProblem
          ? `${what}: some values of the severity map need fixing.`
          : fieldProblems(fields, LABELS, what) ?? (save.error?.status === 409 ? `${what}. ${save.error.message}` : null)
      }
    >
      <TextInput
        label="Name"
        description="Where the alerts come from, e.g. “prod Alertmanager”"
        required
        maxLength={100}
        value={name}
        onChange={(event) => setName(event.currentTarget.value)}
        error={fields.name ?? (save.error?.status === 409 ? save.error.message : undefined)}
        data-autofocus
      />
      {initial ? (
        <Text size="sm">
          Kind: {KIND_LABEL[initial.kind]} <Text span size="xs" c="dimmed">(its token works only there; it cannot change)</Text>
        </Text>
      ) : (
        <Radio.Group label="Kind" value={kind} onChange={(value) => setKind(value as IntegrationKind)} error={fields.kind}>
          <Stack gap={6} mt={4}>
            <Radio value="alertmanager" label={KIND_LABEL.alertmanager} />
            <Radio value="generic" label={KIND_LABEL.generic} />
          </Stack>
        </Radio.Group>
      )}
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
          data={[{ value: '', label: 'No category' }, ...categoryNames.map((c) => ({ value: c, label: c }))]}
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
    </AdminForm>
  );
}

/** Admins connect alerting tools: each integration has a token, shown once, on creation. */
export default function AdminIntegrationsPage() {
  const queryClient = useQueryClient();
  const [created, setCreated] = useState<IntegrationCreated | null>(null);
  const list = useInfiniteQuery({
    queryKey: incidentsKeys.integrations(),
    queryFn: ({ pageParam }) => listIntegrations(pageParam),
    initialPageParam: null as string | null,
    getNextPageParam: (last) => last.next_cursor,
  });
  const reload = () => queryClient.invalidateQueries({ queryKey: incidentsKeys.integrations() });

  return (
    <AdminCollection<Integration>
      title="Alert integrations"
      intro="Alerting tools that declare incidents: Prometheus Alertmanager or any tool that can post JSON."
      items={list.data?.pages.flatMap((page) => page.items)}
      pending={list.isPending}
      itemKey={(integration) => integration.id}
      itemName={(integration) => integration.name}
      loadingLabel="Loading the integrations"
      empty="No integrations yet."
      top={() =>
        created ? (
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
        ) : null
      }
      table={{
        label: 'Alert integrations',
        testId: 'integrations-table',
        minWidth: 760,
        columns: [
          { header: 'Name', cell: (integration) => integration.name, td: { className: 'break-anywhere' } },
          { header: 'Kind', cell: (integration) => KIND_LABEL[integration.kind] },
          {
            header: 'Severity',
            td: { className: 'break-anywhere' },
            cell: (integration) => (
              <Text size="xs" data-testid="integration-severity">
                <Code>{integration.severity_label}</Code>:{' '}
                {Object.entries(integration.severity_map)
                  .map(([value, severity]) => `${value} → ${severity}`)
                  .join(', ') || 'SEV1..SEV4 only'}
                ; otherwise {integration.default_severity}
              </Text>
            ),
          },
          { header: 'Token', cell: (integration) => `${integration.token_prefix}…`, td: { ff: 'monospace' } },
          { header: 'Last used', cell: (integration) => formatDateTime(integration.last_used_at, 'Never') },
          {
            header: 'State',
            cell: (integration) => (
              <Badge variant="light" color={integration.active ? 'green' : 'gray'}>
                {integration.active ? 'Active' : 'Revoked'}
              </Badge>
            ),
          },
        ],
      }}
      create={{
        title: 'New integration',
        id: 'new-integration-title',
        form: (notify) => (
          <IntegrationForm
            submitLabel="Create integration"
            onSubmit={async (values, kind) => {
              const integration = await createIntegration({ ...values, kind });
              notify(null);
              setCreated(integration);
              void reload();
            }}
          />
        ),
      }}
      edit={{
        title: 'Edit integration',
        size: 'xl',
        allowed: (integration) => integration.active,
        form: (editing, done, cancel) => (
          <IntegrationForm
            initial={editing}
            submitLabel="Save integration"
            onCancel={cancel}
            onSubmit={async (values) => {
              const integration = await updateIntegration(editing.id, values);
              done(`“${integration.name}” was saved: alerts from now on use its new settings.`);
              await reload();
            }}
          />
        ),
      }}
      remove={{
        verb: 'Revoke',
        title: 'Revoke integration',
        allowed: (integration) => integration.active,
        question: (integration) => (
          <>
            Revoke <strong>{integration.name}</strong>? Its token is refused from then on; the incidents it declared stay.
          </>
        ),
        run: async (integration) => {
          await revokeIntegration(integration.id);
          void reload();
          return `“${integration.name}” was revoked: its token is refused from now on.`;
        },
      }}
      bottom={
        list.hasNextPage ? (
          <Group>
            <Button variant="default" onClick={() => void list.fetchNextPage()} loading={list.isFetchingNextPage}>
              Load more
            </Button>
          </Group>
        ) : null
      }
    />
  );
}
