import { useState, type FormEvent } from 'react';
import { Alert, Button, Group, Stack } from '@mantine/core';
import { PasswordField } from '../../components/PasswordField';
import { changePassword } from '../../api/accounts';
import { FormError } from '../../components/FormError';
import { HiddenUsername } from '../../components/HiddenUsername';
import { useSubmit } from '../../hooks/useSubmit';
import { Section } from './Section';

export function PasswordSection() {
  const [current, setCurrent] = useState('');
  const [next, setNext] = useState('');
  const [confirm, setConfirm] = useState('');
  const [mismatch, setMismatch] = useState<string | undefined>();
  const [done, setDone] = useState(false);

  const change = useSubmit(() => changePassword({ current_password: current, new_password: next }));

  async function submit(event: FormEvent) {
    event.preventDefault();
    setDone(false);
    if (next !== confirm) {
      setMismatch('The two new passwords do not match.');
      return;
    }
    setMismatch(undefined);
    if (await change.run()) {
      setCurrent('');
      setNext('');
      setConfirm('');
      setDone(true);
    }
  }

  return (
    <Section
      id="password"
      title="Password"
      description="8 to 128 characters. Common passwords and your username or e-mail are refused. Changing it signs out your other sessions."
    >
      <form onSubmit={submit} noValidate>
        <HiddenUsername />
        <Stack gap="sm" maw={480}>
          <FormError error={change.error} />
          {done ? (
            <Alert color="green" variant="light" role="status">
              Password changed. Your other sessions have been signed out.
            </Alert>
          ) : null}
          <PasswordField
            label="Current password"
            autoComplete="current-password"
            required
            value={current}
            onChange={(e) => setCurrent(e.currentTarget.value)}
            error={change.fieldErrors.current_password}
          />
          <PasswordField
            label="New password"
            autoComplete="new-password"
            required
            value={next}
            onChange={(e) => setNext(e.currentTarget.value)}
            error={change.fieldErrors.new_password}
          />
          <PasswordField
            label="Repeat the new password"
            autoComplete="new-password"
            required
            value={confirm}
            onChange={(e) => setConfirm(e.currentTarget.value)}
            error={mismatch}
          />
          <Group>
            <Button type="submit" loading={change.pending} disabled={!current || !next || !confirm}>
              Change password
            </Button>
          </Group>
        </Stack>
      </form>
    </Section>
  );
}
