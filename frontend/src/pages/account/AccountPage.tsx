import { useEffect } from 'react';
import { useLocation } from 'react-router';
import { Stack, Text, Title } from '@mantine/core';
import { useCurrentUser } from '../../auth/AuthContext';
import { usePageTitle } from '../../hooks/usePageTitle';
import { PasswordSection } from './PasswordSection';
import { ProfileSection } from './ProfileSection';
import { TokensSection } from './TokensSection';
import { TwoFactorSection } from './TwoFactorSection';

export default function AccountPage() {
  usePageTitle('Account');
  const user = useCurrentUser();
  const { hash } = useLocation();

  useEffect(() => {
    if (hash) document.getElementById(hash.slice(1))?.scrollIntoView();
  }, [hash]);

  return (
    <Stack gap="xl">
      <div>
        <Title order={1}>Account</Title>
        <Text c="dimmed">
          Signed in as {user.username} ({user.role})
        </Text>
      </div>
      <ProfileSection />
      <PasswordSection />
      <TwoFactorSection />
      <TokensSection />
    </Stack>
  );
}
