import { api, unwrap } from './client';
import type { components } from './schema';
import type { ApiToken, ApiTokenCreated, Role, Session, User, UserPage } from './types';

type Schemas = components['schemas'];
export type UserSort = Schemas['UserSort'];
export type SignInBody = Schemas['SessionLogin'];

/** Query keys of the accounts module, for caching and invalidation. */
export const accountsKeys = {
  all: ['accounts'] as const,
  users: (filters: UserFilters) => ['accounts', 'users', filters] as const,
  tokens: () => ['accounts', 'tokens'] as const,
};

// -- sign-in and the current user -----------------------------------------------------------

export function getSession(): Promise<Session> {
  return unwrap(api.GET('/api/v1/auth/session'));
}

export function signIn(body: SignInBody): Promise<Session> {
  return unwrap(api.POST('/api/v1/auth/session', { body }));
}

export async function signOut(): Promise<void> {
  await unwrap(api.DELETE('/api/v1/auth/session'));
}

export function getMe(): Promise<User> {
  return unwrap(api.GET('/api/v1/users/me'));
}

export function updateMe(body: Schemas['UserSelfUpdate']): Promise<User> {
  return unwrap(api.PATCH('/api/v1/users/me', { body }));
}

export async function changePassword(body: Schemas['PasswordChange']): Promise<void> {
  await unwrap(api.POST('/api/v1/users/me/password', { body }));
}

// -- two-factor -----------------------------------------------------------------------------

export function setupTotp(password: string): Promise<Schemas['TotpSetupOut']> {
  return unwrap(api.POST('/api/v1/users/me/2fa/setup', { body: { password } }));
}

export function confirmTotp(code: string): Promise<Schemas['RecoveryCodesOut']> {
  return unwrap(api.POST('/api/v1/users/me/2fa/confirm', { body: { code } }));
}

export function newRecoveryCodes(body: Schemas['PasswordAndCode']): Promise<Schemas['RecoveryCodesOut']> {
  return unwrap(api.POST('/api/v1/users/me/2fa/recovery-codes', { body }));
}

export async function disableTotp(body: Schemas['PasswordAndCode']): Promise<void> {
  await unwrap(api.POST('/api/v1/users/me/2fa/disable', { body }));
}

// -- API tokens -----------------------------------------------------------------------------

export function listTokens(): Promise<ApiToken[]> {
  return unwrap(api.GET('/api/v1/users/me/tokens'));
}

export function createToken(body: Schemas['ApiTokenCreate']): Promise<ApiTokenCreated> {
  return unwrap(api.POST('/api/v1/users/me/tokens', { body }));
}

export async function revokeToken(tokenId: string): Promise<void> {
  await unwrap(api.DELETE('/api/v1/users/me/tokens/{token_id}', { params: { path: { token_id: tokenId } } }));
}

// -- administration -------------------------------------------------------------------------

export const USERS_PAGE_SIZE = 25;

export interface UserFilters {
  q?: string;
  role?: Role;
  isActive?: boolean;
  sort?: UserSort;
}

/** One page of users; pass the previous page's `next_cursor` for the next one. */
export function listUsers(filters: UserFilters, cursor?: string | null, limit = USERS_PAGE_SIZE): Promise<UserPage> {
  return unwrap(
    api.GET('/api/v1/users', {
      params: {
        query: {
          q: filters.q || undefined,
          role: filters.role,
          is_active: filters.isActive,
          sort: filters.sort,
          cursor: cursor ?? undefined,
          limit,
        },
      },
    }),
  );
}

/** A person as anyone signed in may see them (the directory: no e-mail, role or 2FA state). */
export type DirectoryUser = Schemas['DirectoryUser'];

/** Active people whose username or display name contains `q` (all of them, by username, when empty). */
export function findPeople(q: string, limit = 50): Promise<Schemas['DirectoryPage']> {
  return unwrap(api.GET('/api/v1/users/directory', { params: { query: { q: q || undefined, limit } } }));
}

export function createUser(body: Schemas['UserCreate']): Promise<User> {
  return unwrap(api.POST('/api/v1/users', { body }));
}

export function updateUser(userId: string, body: Schemas['UserAdminUpdate']): Promise<User> {
  return unwrap(api.PATCH('/api/v1/users/{user_id}', { params: { path: { user_id: userId } }, body }));
}
