import { useState } from 'react';
import { Alert, Button, Group, Skeleton, Stack, Switch, Text, Title } from '@mantine/core';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { getPreferences, incidentsKeys, setPreferences, type NotificationPreferences } from '../../api/incidents';
import { FormError } from '../../components/FormError';
import { usePageTitle } from '../../hooks/usePageTitle';
import { useSubmit } from '../../hooks/useSubmit';

const CHOICES: { key: keyof NotificationPreferences; label: string; description: string }[] = [
  { key: 'assignment', label: 'Assignments', description: 'When you are assigned or made commander' },
  { key: 'status_change', label: 'Status changes', description: 'Of incidents you watch' },
  { key: 'comment', label: 'Comments', description: 'On incidents you watch' },
  { key: 'follow_up_due', label: 'Follow-ups due', description: 'Your follow-ups coming due' },
  { key: 'daily_digest', label: 'Daily digest', description: 'One e-mail a day with what changed' },
  { key: 'chat_mentions', label: 'Chat mentions', description: 'Mentions and direct messages you left unread' },
];

function Form({ initial }: { initial: NotificationPreferences }) {
  const queryClient = useQueryClient();
  const [values, setValues] = useState(initial);
  const [notice, setNotice] = useState<string | null>(null);
  const save = useSubmit(async () => {
    queryClient.setQueryData(incidentsKeys.preferences(), await setPreferences(values));
    setNotice('Your e-mail preferences were saved.');
  });
  return (
    <form
      onSubmit={(event) => {
        event.preventDefault();
        setNotice(null);
        void save.run();
      }}
    >
      <Stack gap="md" maw={560}>
        <div role="status">
          {notice ? (
            <Alert color="green" variant="light">
              {notice}
            </Alert>
          ) : null}
        </div>
        <FormError error={save.error} />
        {CHOICES.map(({ key, label, description }) => (
          <Switch
            key={key}
            label={label}
            description={description}
            checked={values[key]}
            onChange={(event) => {
              const checked = event.currentTarget.checked;
              setValues((current) => ({ ...current, [key]: checked }));
            }}
          />
        ))}
        <Group>
          <Button type="submit" loading={save.pending}>
            Save preferences
          </Button>
        </Group>
      </Stack>
    </form>
  );
}

/** Which incident e-mails you get; every e-mail also has a one-click unsubscribe link. */
export default function NotificationsPage() {
  usePageTitle('Incident e-mails');
  const prefs = useQuery({ queryKey: incidentsKeys.preferences(), queryFn: getPreferences });
  return (
    <Stack gap="lg">
      <div>
        <Title order={1}>Incident e-mails</Title>
        <Text c="dimmed" size="sm">
          What OpsDeck e-mails you about incidents. Each e-mail has a link to stop that kind in one click.
        </Text>
      </div>
      {prefs.data ? <Form initial={prefs.data} /> : <Skeleton height={200} aria-label="Loading your preferences" />}
    </Stack>
  );
}
