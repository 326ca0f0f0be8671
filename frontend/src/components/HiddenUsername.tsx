import { useCurrentUser } from '../auth/AuthContext';

/** Lets password managers tie a password form to the account (Chromium asks for it). */
export function HiddenUsername() {
  const user = useCurrentUser();
  return (
    <input
      type="text"
      name="username"
      autoComplete="username"
      value={user.username}
      readOnly
      hidden
      aria-hidden="true"
      tabIndex={-1}
    />
  );
}
