import { Link } from 'react-router';
import { Anchor, Stack, Text, Title } from '@mantine/core';
import { usePageTitle } from '../hooks/usePageTitle';

export function ForbiddenPage() {
  usePageTitle('Access denied');
  return (
    <Stack gap="sm">
      <Title order={1}>Access denied</Title>
      <Text>This page is for administrators. Ask an admin if you need access.</Text>
      <Anchor component={Link} to="/">
        Back to Home
      </Anchor>
    </Stack>
  );
}
