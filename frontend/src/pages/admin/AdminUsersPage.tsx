import { useState, type FormEvent } from 'react';
import {
  Alert,
  Badge,
  Button,
  Group,
  Modal,
  NativeSelect,
  Stack,
  Table,
  Text,
  TextInput,
  Title,
} from '@mantine/core';
import { useDebouncedValue } from '@mantine/hooks';
import { keepPreviousData, useInfiniteQuery, useQueryClient } from '@tanstack/react-query';
import {
  accountsKeys,
  createUser,
  listUsers,
  updateUser,
  type UserFilters,
  type UserSort,
} from '../../api/accounts';
import type { Role, User } from '../../api/types';
import { useAuth, useCurrentUser } from '../../auth/AuthContext';
import { FormError } from '../../components/FormError';
import { PasswordField } from '../../components/PasswordField';
import { formatDateTime } from '../../components/format';
import { usePageTitle } from '../../hooks/usePageTitle';
import { useSubmit } from '../../hooks/useSubmit';

type RoleFilter = '' | Role;
type ActiveFilter = '' | 'true' | 'false';

function CreateUserModal({
  opened,
  onClose,
  onCreated,
}: {
  opened: boolean;
  onClose: () => void;
  onCreated: (user: User) => void;
}) {
  const [username, setUsername] = useState('');
  const [email, setEmail] = useState('');
  const [displayName, setDisplayName] = useState('');
  const [password, setPassword] = useState('');
  const [role, setRole] = useState<Role>('member');

  const create = useSubmit(async () => {
    const user = await createUser({ username, email, password, display_name: displayName, role });
    setUsername('');
    setEmail('');
    setDisplayName('');
    setPassword('');
    setRole('member');
    onCreated(user);
  });

  function submit(event: FormEvent) {
    event.preventDefault();
    void create.run();
  }

  return (
    <Modal opened={opened} onClose={onClose} title="Create a user" size="md">
      <form onSubmit={submit} noValidate>
        <Stack gap="sm">
          <FormError error={create.error} />
          <TextInput
            label="Username"
            required
            autoComplete="off"
            autoCapitalize="none"
            spellCheck={false}
            value={username}
            onChange={(e) => setUsername(e.currentTarget.value)}
            error={create.fieldErrors.username}
            data-autofocus
          />
          <TextInput
            label="E-mail"
            type="email"
            required
            autoComplete="off"
            value={email}
            onChange={(e) => setEmail(e.currentTarget.value)}
            error={create.fieldErrors.email}
          />
          <TextInput
            label="Display name"
            description="Optional"
            maxLength={100}
            value={displayName}
            onChange={(e) => setDisplayName(e.currentTarget.value)}
            error={create.fieldErrors.display_name}
          />
          <PasswordField
            label="Initial password"
            description="8 to 128 characters; give it to the user through a safe channel."
            required
            autoComplete="new-password"
            value={password}
            onChange={(e) => setPassword(e.currentTarget.value)}
            error={create.fieldErrors.password}
          />
          <NativeSelect
            label="Role"
            value={role}
            onChange={(e) => setRole(e.currentTarget.value as Role)}
            data={[
              { value: 'member', label: 'Member' },
              { value: 'admin', label: 'Admin' },
            ]}
          />
          <Group justify="flex-end" mt="sm">
            <Button variant="default" onClick={onClose}>
              Cancel
            </Button>
            <Button type="submit" loading={create.pending}>
              Create user
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}

function DeactivateModal({
  user,
  onClose,
  onConfirm,
  pending,
}: {
  user: User | null;
  onClose: () => void;
  onConfirm: (user: User) => void;
  pending: boolean;
}) {
  return (
    <Modal opened={user !== null} onClose={onClose} title="Deactivate user">
      <Stack gap="md">
        <Text size="sm">
          Deactivate <strong>{user?.username}</strong>? They are signed out everywhere at once and
          their API tokens stop working. You can reactivate the account later.
        </Text>
        <Group justify="flex-end">
          <Button variant="default" onClick={onClose}>
            Cancel
          </Button>
          <Button color="red" loading={pending} onClick={() => user && onConfirm(user)}>
            Deactivate
          </Button>
        </Group>
      </Stack>
    </Modal>
  );
}

export default function AdminUsersPage() {
  usePageTitle('Users');
  const me = useCurrentUser();
  const { refreshUser } = useAuth();
  const [search, setSearch] = useState('');
  const [query] = useDebouncedValue(search.trim(), 300);
  const [roleFilter, setRoleFilter] = useState<RoleFilter>('');
  const [activeFilter, setActiveFilter] = useState<ActiveFilter>('');
  const [sort, setSort] = useState<UserSort>('username');
  const [creating, setCreating] = useState(false);
  const [deactivating, setDeactivating] = useState<User | null>(null);
  const [notice, setNotice] = useState<string | null>(null);

  const filters: UserFilters = {
    q: query || undefined,
    role: roleFilter || undefined,
    isActive: activeFilter === '' ? undefined : activeFilter === 'true',
    sort,
  };
  const queryClient = useQueryClient();
  const users = useInfiniteQuery({
    queryKey: accountsKeys.users(filters),
    queryFn: ({ pageParam }) => listUsers(filters, pageParam),
    initialPageParam: null as string | null,
    getNextPageParam: (last) => last.next_cursor,
    // The list on screen stays while a new search or filter loads.
    placeholderData: keepPreviousData,
  });
  const reload = () => queryClient.invalidateQueries({ queryKey: [...accountsKeys.all, 'users'] });

  const update = useSubmit(
    async (user: User, body: { role?: Role; is_active?: boolean }, message: string) => {
      await updateUser(user.id, body);
      setNotice(message);
      await reload();
      // Demoting yourself takes the admin pages away: the shell must know at once.
      if (user.id === me.id) await refreshUser();
    },
  );

  async function change(user: User, body: { role?: Role; is_active?: boolean }, message: string) {
    setNotice(null);
    return update.run(user, body, message);
  }

  const items = users.data?.pages.flatMap((page) => page.items) ?? [];
  const loading = users.isPending;
  const count = `${items.length}${users.hasNextPage ? '+' : ''}`;

  return (
    <Stack gap="md">
      <Group justify="space-between" align="flex-end">
        <Title order={1}>Users</Title>
        <Button onClick={() => setCreating(true)}>Create user</Button>
      </Group>
      {notice ? (
        <Alert color="green" variant="light" role="status" withCloseButton onClose={() => setNotice(null)}>
          {notice}
        </Alert>
      ) : null}
      <FormError error={update.error} />
      <Group align="flex-end" wrap="wrap" role="search">
        <TextInput
          label="Search"
          description="Username, e-mail or display name"
          type="search"
          value={search}
          onChange={(e) => {
            setSearch(e.currentTarget.value);
          }}
          w={280}
        />
        <NativeSelect
          label="Role"
          value={roleFilter}
          onChange={(e) => {
            setRoleFilter(e.currentTarget.value as RoleFilter);
          }}
          data={[
            { value: '', label: 'All roles' },
            { value: 'admin', label: 'Admins' },
            { value: 'member', label: 'Members' },
          ]}
        />
        <NativeSelect
          label="Status"
          value={activeFilter}
          onChange={(e) => {
            setActiveFilter(e.currentTarget.value as ActiveFilter);
          }}
          data={[
            { value: '', label: 'All' },
            { value: 'true', label: 'Active' },
            { value: 'false', label: 'Deactivated' },
          ]}
        />
        <NativeSelect
          label="Sort"
          value={sort}
          onChange={(e) => setSort(e.currentTarget.value as UserSort)}
          data={[
            { value: 'username', label: 'Username, A–Z' },
            { value: '-username', label: 'Username, Z–A' },
            { value: '-created_at', label: 'Newest first' },
            { value: 'created_at', label: 'Oldest first' },
          ]}
        />
      </Group>
      <Text size="sm" c="dimmed" aria-live="polite">
        {loading ? 'Loading users…' : `${count} user${items.length === 1 && !users.hasNextPage ? '' : 's'}`}
      </Text>
      <Table.ScrollContainer minWidth={1000}>
        <Table striped highlightOnHover aria-label="Users" data-testid="users-table">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Username</Table.Th>
              <Table.Th>Display name</Table.Th>
              <Table.Th>E-mail</Table.Th>
              <Table.Th>Role</Table.Th>
              <Table.Th>Status</Table.Th>
              <Table.Th>2FA</Table.Th>
              <Table.Th>Created</Table.Th>
              <Table.Th>
                <span className="visually-hidden">Actions</span>
              </Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {items.map((user) => (
              <Table.Tr key={user.id} data-username={user.username}>
                <Table.Td>{user.username}</Table.Td>
                <Table.Td data-testid="user-display-name">{user.display_name}</Table.Td>
                <Table.Td>{user.email}</Table.Td>
                <Table.Td style={{ minWidth: 120 }}>
                  <NativeSelect
                    size="xs"
                    aria-label={`Role of ${user.username}`}
                    value={user.role}
                    disabled={update.pending}
                    onChange={(e) => {
                      const role = e.currentTarget.value as Role;
                      void change(user, { role }, `${user.username} is now ${role === 'admin' ? 'an admin' : 'a member'}.`);
                    }}
                    data={[
                      { value: 'member', label: 'Member' },
                      { value: 'admin', label: 'Admin' },
                    ]}
                  />
                </Table.Td>
                <Table.Td style={{ minWidth: 120 }}>
                  <Badge variant="light" color={user.is_active ? 'green' : 'gray'}>
                    {user.is_active ? 'Active' : 'Deactivated'}
                  </Badge>
                </Table.Td>
                <Table.Td>{user.totp_enabled ? 'On' : 'Off'}</Table.Td>
                <Table.Td style={{ whiteSpace: 'nowrap' }}>{formatDateTime(user.created_at)}</Table.Td>
                <Table.Td>
                  {user.is_active ? (
                    <Button
                      size="xs"
                      variant="light"
                      color="red"
                      disabled={user.id === me.id}
                      title={user.id === me.id ? 'You cannot deactivate yourself' : undefined}
                      onClick={() => setDeactivating(user)}
                      aria-label={`Deactivate ${user.username}`}
                    >
                      Deactivate
                    </Button>
                  ) : (
                    <Button
                      size="xs"
                      variant="light"
                      onClick={() => void change(user, { is_active: true }, `${user.username} is active again.`)}
                      aria-label={`Reactivate ${user.username}`}
                    >
                      Reactivate
                    </Button>
                  )}
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      </Table.ScrollContainer>
      {!loading && items.length === 0 ? (
        <Text size="sm" c="dimmed">
          No users match.
        </Text>
      ) : null}
      {users.hasNextPage ? (
        <Group>
          <Button variant="default" onClick={() => void users.fetchNextPage()} loading={users.isFetchingNextPage}>
            Load more
          </Button>
        </Group>
      ) : null}
      <CreateUserModal
        opened={creating}
        onClose={() => setCreating(false)}
        onCreated={(user) => {
          setCreating(false);
          setNotice(`User ${user.username} created.`);
          void reload();
        }}
      />
      <DeactivateModal
        user={deactivating}
        pending={update.pending}
        onClose={() => setDeactivating(null)}
        onConfirm={(user) => {
          setDeactivating(null);
          void change(user, { is_active: false }, `${user.username} has been deactivated.`);
        }}
      />
    </Stack>
  );
}
