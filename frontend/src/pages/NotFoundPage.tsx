import { Link } from 'react-router';
import { Anchor, Stack, Text, Title } from '@mantine/core';
import { usePageTitle } from '../hooks/usePageTitle';

export function NotFoundPage() {
  usePageTitle('Page not found');
  return (
    <Stack gap="sm">
      <Title order={1}>Page not found</Title>
      <Text>There is no page at this address.</Text>
      <Anchor component={Link} to="/">
        Back to Home
      </Anchor>
    </Stack>
  );
}
