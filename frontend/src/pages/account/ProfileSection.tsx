import { useState, type FormEvent } from 'react';
import { Alert, Button, Group, Stack, TextInput } from '@mantine/core';
import { updateMe } from '../../api/accounts';
import { useAuth, useCurrentUser } from '../../auth/AuthContext';
import { FormError } from '../../components/FormError';
import { useSubmit } from '../../hooks/useSubmit';
import { Section } from './Section';

export function ProfileSection() {
  const user = useCurrentUser();
  const { setUser } = useAuth();
  const [displayName, setDisplayName] = useState(user.display_name);
  const [email, setEmail] = useState(user.email);
  const [saved, setSaved] = useState(false);

  const save = useSubmit(async () => {
    const body: { display_name?: string; email?: string } = {};
    if (displayName !== user.display_name) body.display_name = displayName;
    if (email !== user.email) body.email = email;
    const updated = await updateMe(body);
    setUser(updated);
    setDisplayName(updated.display_name);
    setEmail(updated.email);
  });

  async function submit(event: FormEvent) {
    event.preventDefault();
    setSaved(false);
    if (await save.run()) setSaved(true);
  }

  const unchanged = displayName === user.display_name && email === user.email;
  return (
    <Section id="profile" title="Profile" description="How others see you in OpsDeck.">
      <form onSubmit={submit} noValidate>
        <Stack gap="sm" maw={480}>
          <FormError error={save.error} />
          {saved ? (
            <Alert color="green" variant="light" role="status">
              Profile saved.
            </Alert>
          ) : null}
          <TextInput
            label="Display name"
            description="Shown instead of your username. Up to 100 characters."
            value={displayName}
            maxLength={100}
            onChange={(e) => setDisplayName(e.currentTarget.value)}
            error={save.fieldErrors.display_name}
          />
          <TextInput
            label="E-mail"
            type="email"
            autoComplete="email"
            value={email}
            onChange={(e) => setEmail(e.currentTarget.value)}
            error={save.fieldErrors.email}
          />
          <Group>
            <Button type="submit" loading={save.pending} disabled={unchanged}>
              Save profile
            </Button>
          </Group>
        </Stack>
      </form>
    </Section>
  );
}
