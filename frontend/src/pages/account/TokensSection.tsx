import { useState, type FormEvent } from 'react';
import {
  Alert,
  Badge,
  Button,
  Code,
  CopyButton,
  Group,
  Modal,
  NumberInput,
  Stack,
  Table,
  Text,
  TextInput,
} from '@mantine/core';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { accountsKeys, createToken, listTokens, revokeToken } from '../../api/accounts';
import type { ApiToken, ApiTokenCreated } from '../../api/types';
import { FormError } from '../../components/FormError';
import { formatDateTime } from '../../components/format';
import { useSubmit } from '../../hooks/useSubmit';
import { Section } from './Section';

function tokenState(token: ApiToken): { label: string; color: string } {
  if (token.revoked_at) return { label: 'Revoked', color: 'gray' };
  if (token.expires_at && new Date(token.expires_at).getTime() <= Date.now()) {
    return { label: 'Expired', color: 'gray' };
  }
  return { label: 'Active', color: 'green' };
}

function NewToken({ token, onDismiss }: { token: ApiTokenCreated; onDismiss: () => void }) {
  return (
    <Alert color="yellow" variant="light" title={`Token "${token.name}" created`} role="status">
      <Stack gap="xs">
        <Text size="sm">Copy it now: it will not be shown again.</Text>
        <Code block data-testid="new-token">
          {token.token}
        </Code>
        <Group>
          <CopyButton value={token.token}>
            {({ copied, copy }) => (
              <Button size="xs" variant="default" onClick={copy}>
                {copied ? 'Copied' : 'Copy token'}
              </Button>
            )}
          </CopyButton>
          <Button size="xs" variant="subtle" onClick={onDismiss}>
            Done
          </Button>
        </Group>
      </Stack>
    </Alert>
  );
}

export function TokensSection() {
  const queryClient = useQueryClient();
  const tokens = useQuery({ queryKey: accountsKeys.tokens(), queryFn: listTokens });
  const reload = () => queryClient.invalidateQueries({ queryKey: accountsKeys.tokens() });
  const [name, setName] = useState('');
  const [days, setDays] = useState<string | number>('');
  const [created, setCreated] = useState<ApiTokenCreated | null>(null);
  const [revoking, setRevoking] = useState<ApiToken | null>(null);

  const create = useSubmit(async () => {
    const body: { name: string; expires_in_days?: number } = { name: name.trim() };
    if (typeof days === 'number') body.expires_in_days = days;
    const token = await createToken(body);
    setCreated(token);
    setName('');
    setDays('');
    await reload();
  });
  const revoke = useSubmit(async (token: ApiToken) => {
    await revokeToken(token.id);
    setRevoking(null);
    await reload();
  });

  function submit(event: FormEvent) {
    event.preventDefault();
    void create.run();
  }

  const list = tokens.data ?? [];
  return (
    <Section
      id="tokens"
      title="Personal API tokens"
      description={
        <>
          For scripts and tools: send <Code>Authorization: Bearer opd_…</Code>. A token acts as
          you, with your role.
        </>
      }
    >
      {created ? <NewToken token={created} onDismiss={() => setCreated(null)} /> : null}
      <form onSubmit={submit} noValidate aria-label="Create a token">
        <Stack gap="sm">
          <FormError error={create.error} />
          <Group align="flex-end" wrap="wrap">
            <TextInput
              label="Token name"
              description="What it is for, e.g. backup script"
              required
              maxLength={100}
              value={name}
              onChange={(e) => setName(e.currentTarget.value)}
              error={create.fieldErrors.name}
              w={260}
            />
            <NumberInput
              label="Expires after (days)"
              description="Empty: never"
              min={1}
              max={3650}
              allowDecimal={false}
              allowNegative={false}
              value={days}
              onChange={setDays}
              error={create.fieldErrors.expires_in_days}
              w={180}
            />
            <Button type="submit" loading={create.pending} disabled={!name.trim()}>
              Create token
            </Button>
          </Group>
        </Stack>
      </form>
      {list.length === 0 ? (
        <Text size="sm" c="dimmed">
          {tokens.isPending ? 'Loading tokens…' : 'You have no API tokens.'}
        </Text>
      ) : (
        <Table.ScrollContainer minWidth={640}>
          <Table striped highlightOnHover aria-label="Your API tokens">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Name</Table.Th>
                <Table.Th>Token</Table.Th>
                <Table.Th>Created</Table.Th>
                <Table.Th>Last used</Table.Th>
                <Table.Th>Expires</Table.Th>
                <Table.Th>Status</Table.Th>
                <Table.Th>
                  <span className="visually-hidden">Actions</span>
                </Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {list.map((token) => {
                const state = tokenState(token);
                return (
                  <Table.Tr key={token.id}>
                    <Table.Td>{token.name}</Table.Td>
                    <Table.Td>
                      <Code>{token.token_prefix}…</Code>
                    </Table.Td>
                    <Table.Td>{formatDateTime(token.created_at)}</Table.Td>
                    <Table.Td>{formatDateTime(token.last_used_at, 'Never')}</Table.Td>
                    <Table.Td>{formatDateTime(token.expires_at, 'Never')}</Table.Td>
                    <Table.Td>
                      <Badge variant="light" color={state.color}>
                        {state.label}
                      </Badge>
                    </Table.Td>
                    <Table.Td>
                      {state.label === 'Active' ? (
                        <Button
                          size="xs"
                          color="red"
                          variant="light"
                          onClick={() => {
                            revoke.reset();
                            setRevoking(token);
                          }}
                          aria-label={`Revoke token ${token.name}`}
                        >
                          Revoke
                        </Button>
                      ) : null}
                    </Table.Td>
                  </Table.Tr>
                );
              })}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      )}
      <Modal opened={revoking !== null} onClose={() => setRevoking(null)} title="Revoke token">
        <Stack gap="md">
          <FormError error={revoke.error} />
          <Text size="sm">
            Revoke <strong>{revoking?.name}</strong>? Anything using it stops working at once.
          </Text>
          <Group justify="flex-end">
            <Button variant="default" onClick={() => setRevoking(null)}>
              Cancel
            </Button>
            <Button
              color="red"
              loading={revoke.pending}
              onClick={() => revoking && void revoke.run(revoking)}
            >
              Revoke token
            </Button>
          </Group>
        </Stack>
      </Modal>
    </Section>
  );
}
