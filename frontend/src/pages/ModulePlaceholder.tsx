import { Alert, Stack, Text, Title } from '@mantine/core';
import { usePageTitle } from '../hooks/usePageTitle';

export function ModulePlaceholder({ label, description }: { label: string; description: string }) {
  usePageTitle(label);
  return (
    <Stack gap="md">
      <Title order={1}>{label}</Title>
      <Text c="dimmed">{description}</Text>
      <Alert variant="light" color="blue" title="Coming soon">
        The {label} module is not part of this release yet. Its pages will appear here.
      </Alert>
    </Stack>
  );
}
