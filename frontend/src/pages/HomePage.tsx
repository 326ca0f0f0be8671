import { Link } from 'react-router';
import { useQuery } from '@tanstack/react-query';
import {
  Anchor,
  Badge,
  Button,
  Card,
  Group,
  SimpleGrid,
  Skeleton,
  Stack,
  Table,
  Text,
  Title,
} from '@mantine/core';
import { api } from '../api/client';
import { errorFromResponse, toApiError } from '../api/errors';
import type { Readiness } from '../api/types';
import { useCurrentUser } from '../auth/AuthContext';
import { displayName, formatDateTime } from '../components/format';
import { usePageTitle } from '../hooks/usePageTitle';
import { MODULES } from '../modules';

function asReadiness(body: unknown): Readiness | null {
  if (typeof body !== 'object' || body === null) return null;
  const value = body as Partial<Readiness>;
  if (typeof value.status !== 'string' || typeof value.checks !== 'object' || !value.checks) {
    return null;
  }
  return {
    status: value.status,
    checks: value.checks,
    failing: Array.isArray(value.failing) ? value.failing : [],
  };
}

/** /ready answers 503 with the same body when a dependency is down: both are a result. */
async function loadReadiness(): Promise<Readiness> {
  const result = await api.GET('/ready').catch((error: unknown) => {
    throw toApiError(error);
  });
  const readiness = asReadiness(result.data ?? result.error);
  if (readiness) return readiness;
  throw errorFromResponse(result.response, result.error);
}

function HealthCard() {
  const health = useQuery({ queryKey: ['health', 'ready'], queryFn: loadReadiness });
  const { data } = health;
  const loading = health.isFetching;
  const ok = data?.status === 'ok';
  return (
    <Card withBorder radius="md" padding="lg" component="section" aria-labelledby="health-title">
      <Group justify="space-between" mb="sm">
        <Title order={2} size="h4" id="health-title">
          Platform health
        </Title>
        {data ? (
          <Badge color={ok ? 'green' : 'red'} variant="light" data-testid="health-status">
            {ok ? 'All systems ready' : 'Degraded'}
          </Badge>
        ) : null}
      </Group>
      {loading && !data ? (
        <Stack gap="xs" aria-busy="true">
          <Skeleton height={14} />
          <Skeleton height={14} />
          <Skeleton height={14} />
        </Stack>
      ) : data ? (
        <Table aria-label="Readiness checks" verticalSpacing={4}>
          <Table.Tbody>
            {Object.entries(data.checks).map(([name, result]) => (
              <Table.Tr key={name}>
                <Table.Th scope="row" tt="capitalize" fw={500}>
                  {name}
                </Table.Th>
                <Table.Td>
                  <Text size="sm" c={result === 'ok' ? 'green' : 'red'}>
                    {result === 'ok' ? 'OK' : result}
                  </Text>
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      ) : (
        <Text size="sm" c="dimmed">
          Health is unavailable.
        </Text>
      )}
      <Group mt="md">
        <Button variant="default" size="xs" onClick={() => void health.refetch()} loading={loading}>
          Check again
        </Button>
      </Group>
    </Card>
  );
}

export function HomePage() {
  usePageTitle('Home');
  const user = useCurrentUser();
  return (
    <Stack gap="lg">
      <Title order={1}>Welcome, {displayName(user)}</Title>
      <SimpleGrid cols={{ base: 1, md: 2 }} spacing="lg">
        <Card withBorder radius="md" padding="lg" component="section" aria-labelledby="me-title">
          <Title order={2} size="h4" id="me-title" mb="sm">
            Your account
          </Title>
          <Table verticalSpacing={4} aria-label="Your account">
            <Table.Tbody>
              <Table.Tr>
                <Table.Th scope="row" fw={500}>Username</Table.Th>
                <Table.Td data-testid="me-username">{user.username}</Table.Td>
              </Table.Tr>
              <Table.Tr>
                <Table.Th scope="row" fw={500}>Display name</Table.Th>
                <Table.Td data-testid="me-display-name">{user.display_name || '—'}</Table.Td>
              </Table.Tr>
              <Table.Tr>
                <Table.Th scope="row" fw={500}>E-mail</Table.Th>
                <Table.Td>{user.email}</Table.Td>
              </Table.Tr>
              <Table.Tr>
                <Table.Th scope="row" fw={500}>Role</Table.Th>
                <Table.Td>
                  <Badge variant="light" color={user.role === 'admin' ? 'grape' : 'gray'}>
                    {user.role}
                  </Badge>
                </Table.Td>
              </Table.Tr>
              <Table.Tr>
                <Table.Th scope="row" fw={500}>Two-factor</Table.Th>
                <Table.Td>
                  {user.totp_enabled ? (
                    'On'
                  ) : (
                    <>
                      Off ·{' '}
                      <Anchor component={Link} to="/account#two-factor" size="sm">
                        turn it on
                      </Anchor>
                    </>
                  )}
                </Table.Td>
              </Table.Tr>
              <Table.Tr>
                <Table.Th scope="row" fw={500}>Member since</Table.Th>
                <Table.Td>{formatDateTime(user.created_at)}</Table.Td>
              </Table.Tr>
            </Table.Tbody>
          </Table>
        </Card>
        <HealthCard />
      </SimpleGrid>
      <section aria-labelledby="modules-title">
        <Title order={2} size="h4" id="modules-title" mb="sm">
          Modules
        </Title>
        <SimpleGrid cols={{ base: 1, sm: 3 }} spacing="md">
          {MODULES.map((module) => (
            <Card key={module.path} withBorder radius="md" padding="md">
              <Text fw={600}>
                <Anchor component={Link} to={`/${module.path}`}>
                  {module.label}
                </Anchor>
              </Text>
              <Text size="sm" c="dimmed" mt={4}>
                {module.description}
              </Text>
              {module.Summary ? <module.Summary /> : null}
            </Card>
          ))}
        </SimpleGrid>
      </section>
    </Stack>
  );
}
