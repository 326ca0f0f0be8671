import { useEffect, useRef, useState, type FormEvent } from 'react';
import { Navigate, useNavigate, useSearchParams } from 'react-router';
import {
  Alert,
  Anchor,
  Button,
  Center,
  Group,
  Paper,
  Stack,
  Text,
  TextInput,
  Title,
} from '@mantine/core';
import { type ApiError, toApiError } from '../api/errors';
import { useAuth } from '../auth/AuthContext';
import { FullPageLoader, safeNext } from '../auth/guards';
import { FormError } from '../components/FormError';
import { PasswordField } from '../components/PasswordField';
import { usePageTitle } from '../hooks/usePageTitle';

type Step = 'password' | 'otp';

export function SignInPage() {
  usePageTitle('Sign in');
  const { status, reason, signIn } = useAuth();
  const [params] = useSearchParams();
  const navigate = useNavigate();
  const next = safeNext(params.get('next'));

  const [step, setStep] = useState<Step>('password');
  const [useRecovery, setUseRecovery] = useState(false);
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [otp, setOtp] = useState('');
  const [error, setError] = useState<ApiError | null>(null);
  const [pending, setPending] = useState(false);
  const [missing, setMissing] = useState<Record<string, string>>({});
  const otpInput = useRef<HTMLInputElement>(null);

  useEffect(() => {
    if (step === 'otp') otpInput.current?.focus();
  }, [step, useRecovery]);

  if (status === 'loading') return <FullPageLoader />;
  if (status === 'authenticated' && !pending) return <Navigate to={next} replace />;

  async function submit(event: FormEvent) {
    event.preventDefault();
    const empty: Record<string, string> = {};
    if (step === 'password') {
      if (!username.trim()) empty.username = 'Enter your username or e-mail.';
      if (!password) empty.password = 'Enter your password.';
    } else if (!otp.trim()) {
      empty.otp = useRecovery ? 'Enter a recovery code.' : 'Enter the code from your app.';
    }
    setMissing(empty);
    if (Object.keys(empty).length > 0) return;
    setPending(true);
    setError(null);
    try {
      await signIn({ username, password, otp: step === 'otp' ? otp.trim() : undefined });
      setPassword('');
      navigate(next, { replace: true });
    } catch (reason_) {
      const apiError = toApiError(reason_);
      if (apiError.code === 'otp_required') {
        setStep('otp');
        setOtp('');
      } else {
        setError(apiError);
        if (step === 'otp') setOtp('');
      }
    } finally {
      setPending(false);
    }
  }

  function startOver() {
    setStep('password');
    setUseRecovery(false);
    setOtp('');
    setPassword('');
    setError(null);
    setMissing({});
  }

  return (
    <Center mih="100vh" p="md">
      <Paper withBorder shadow="sm" p="xl" radius="md" w="100%" maw={420}>
        <main>
          <form onSubmit={submit} noValidate aria-labelledby="signin-title">
            <Stack gap="md">
              <Title order={1} size="h2" id="signin-title">
                Sign in to OpsDeck
              </Title>
              {reason === 'expired' && !error ? (
                <Alert color="yellow" variant="light" role="status">
                  Your session has ended. Sign in again to continue.
                </Alert>
              ) : null}
              {reason === 'signed-out' && !error ? (
                <Alert color="blue" variant="light" role="status">
                  You have signed out.
                </Alert>
              ) : null}
              <FormError error={error} />
              {step === 'password' ? (
                <>
                  <TextInput
                    label="Username or e-mail"
                    name="username"
                    autoComplete="username"
                    autoCapitalize="none"
                    spellCheck={false}
                    required
                    value={username}
                    error={missing.username}
                    onChange={(e) => setUsername(e.currentTarget.value)}
                    data-autofocus
                    autoFocus
                  />
                  <PasswordField
                    label="Password"
                    name="password"
                    autoComplete="current-password"
                    required
                    value={password}
                    error={missing.password}
                    onChange={(e) => setPassword(e.currentTarget.value)}
                  />
                  <Button type="submit" loading={pending}>
                    Sign in
                  </Button>
                </>
              ) : (
                <>
                  <Text size="sm">
                    {useRecovery
                      ? 'Enter one of your recovery codes. Each code works once.'
                      : 'Enter the 6-digit code from your authenticator app.'}
                  </Text>
                  <TextInput
                    ref={otpInput}
                    key={useRecovery ? 'recovery' : 'totp'}
                    label={useRecovery ? 'Recovery code' : 'Authentication code'}
                    name="otp"
                    autoComplete="one-time-code"
                    inputMode={useRecovery ? 'text' : 'numeric'}
                    autoCapitalize="none"
                    spellCheck={false}
                    required
                    value={otp}
                    error={missing.otp}
                    onChange={(e) => setOtp(e.currentTarget.value)}
                  />
                  <Button type="submit" loading={pending}>
                    Verify and sign in
                  </Button>
                  <Group justify="space-between">
                    <Anchor
                      component="button"
                      type="button"
                      size="sm"
                      onClick={() => {
                        setUseRecovery((v) => !v);
                        setOtp('');
                        setError(null);
                      }}
                    >
                      {useRecovery ? 'Use an authenticator code' : 'Use a recovery code'}
                    </Anchor>
                    <Anchor component="button" type="button" size="sm" onClick={startOver}>
                      Start over
                    </Anchor>
                  </Group>
                </>
              )}
            </Stack>
          </form>
        </main>
      </Paper>
    </Center>
  );
}
