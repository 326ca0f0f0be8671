import {
  createContext,
  useCallback,
  useContext,
  useEffect,
  useMemo,
  useState,
  type ReactNode,
} from 'react';
import { useQueryClient } from '@tanstack/react-query';
import { getMe, getSession, signIn as signInRequest, signOut as signOutRequest } from '../api/accounts';
import { mayHaveSession, setCsrfToken, setSessionExpiredHandler } from '../api/client';
import { ApiError } from '../api/errors';
import { closeSocket } from '../api/socket';
import type { Session, User } from '../api/types';

export type AuthStatus = 'loading' | 'anonymous' | 'authenticated';

/** Why the user is on the sign-in page, for the notice shown there. */
export type SignedOutReason = 'expired' | 'signed-out' | null;

export interface SignInInput {
  username: string;
  password: string;
  otp?: string;
}

export interface AuthContextValue {
  status: AuthStatus;
  user: User | null;
  reason: SignedOutReason;
  signIn: (input: SignInInput) => Promise<User>;
  signOut: () => Promise<void>;
  refreshUser: () => Promise<void>;
  setUser: (user: User) => void;
}

const AuthContext = createContext<AuthContextValue | null>(null);

export function AuthProvider({ children }: { children: ReactNode }) {
  // Signed out (no session cookies): nothing to probe, and a probe would answer 401, which the
  // browser logs as an error. Decided once, on load.
  const [probe] = useState(mayHaveSession);
  const [status, setStatus] = useState<AuthStatus>(probe ? 'loading' : 'anonymous');
  const [user, setUserState] = useState<User | null>(null);
  const [reason, setReason] = useState<SignedOutReason>(null);
  const queryClient = useQueryClient();

  const adopt = useCallback((session: Session) => {
    setCsrfToken(session.csrf_token);
    setUserState(session.user);
    setReason(null);
    setStatus('authenticated');
  }, []);

  const forget = useCallback((why: SignedOutReason) => {
    setCsrfToken(null);
    // The next person to sign in on this tab must not see what this one loaded, nor receive
    // this one's events: the shared socket closes, and the next sign-in opens a new one.
    closeSocket();
    queryClient.clear();
    setUserState(null);
    setReason(why);
    setStatus('anonymous');
  }, [queryClient]);

  useEffect(() => {
    if (!probe) return undefined;
    let live = true;
    getSession().then(
      (session) => live && adopt(session),
      () => live && forget(null),
    );
    return () => {
      live = false;
    };
  }, [probe, adopt, forget]);

  useEffect(() => {
    setSessionExpiredHandler(() => forget('expired'));
    return () => setSessionExpiredHandler(null);
  }, [forget]);

  const signIn = useCallback(
    async (input: SignInInput) => {
      const body = input.otp ? input : { username: input.username, password: input.password };
      const session = await signInRequest(body);
      adopt(session);
      return session.user;
    },
    [adopt],
  );

  const signOut = useCallback(async () => {
    try {
      await signOutRequest();
    } catch (error) {
      // An already-ended session is the outcome we wanted; anything else is worth showing.
      if (!(error instanceof ApiError && error.status === 401)) throw error;
    } finally {
      forget('signed-out');
    }
  }, [forget]);

  const refreshUser = useCallback(async () => {
    const fresh = await getMe();
    setUserState(fresh);
  }, []);

  const value = useMemo<AuthContextValue>(
    () => ({ status, user, reason, signIn, signOut, refreshUser, setUser: setUserState }),
    [status, user, reason, signIn, signOut, refreshUser],
  );
  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}

export function useAuth(): AuthContextValue {
  const value = useContext(AuthContext);
  if (!value) throw new Error('useAuth() outside <AuthProvider>');
  return value;
}

/** The signed-in user; only for pages behind <RequireAuth>. */
export function useCurrentUser(): User {
  const { user } = useAuth();
  if (!user) throw new Error('useCurrentUser() without a signed-in user');
  return user;
}
