import { useEffect, useState, type FormEvent } from 'react';
import {
  Alert,
  Badge,
  Button,
  Code,
  Group,
  Image,
  Stack,
  Text,
  TextInput,
} from '@mantine/core';
import QRCode from 'qrcode';
import { confirmTotp, disableTotp, newRecoveryCodes, setupTotp } from '../../api/accounts';
import { useAuth, useCurrentUser } from '../../auth/AuthContext';
import { FormError } from '../../components/FormError';
import { HiddenUsername } from '../../components/HiddenUsername';
import { PasswordField } from '../../components/PasswordField';
import { useSubmit } from '../../hooks/useSubmit';
import { RecoveryCodes } from './RecoveryCodes';
import { Section } from './Section';

type Stage =
  | { name: 'idle' }
  | { name: 'password' }
  | { name: 'scan'; secret: string; uri: string }
  | { name: 'codes'; codes: string[] };

function QrImage({ uri }: { uri: string }) {
  const [src, setSrc] = useState<string | null>(null);
  useEffect(() => {
    let live = true;
    QRCode.toDataURL(uri, { margin: 1, width: 200, errorCorrectionLevel: 'M' }).then(
      (url) => live && setSrc(url),
      () => live && setSrc(null),
    );
    return () => {
      live = false;
    };
  }, [uri]);
  if (!src) return null;
  return (
    <Image
      src={src}
      w={200}
      h={200}
      alt="QR code to add OpsDeck to your authenticator app"
      data-testid="totp-qr"
      bg="white"
      radius="sm"
    />
  );
}

/** Groups of four, easier to type into an app by hand. */
function spaced(secret: string): string {
  return secret.replace(/(.{4})(?=.)/g, '$1 ');
}

function EnableTwoFactor({ onCodes }: { onCodes: (codes: string[]) => void }) {
  const { refreshUser } = useAuth();
  const [stage, setStage] = useState<Stage>({ name: 'idle' });
  const [password, setPassword] = useState('');
  const [code, setCode] = useState('');

  const setup = useSubmit(async () => {
    const result = await setupTotp(password);
    setPassword('');
    setStage({ name: 'scan', secret: result.secret, uri: result.provisioning_uri });
  });
  const confirm = useSubmit(async () => {
    const result = await confirmTotp(code.trim());
    setCode('');
    onCodes(result.recovery_codes);
    await refreshUser().catch(() => undefined);
  });

  if (stage.name === 'idle' || stage.name === 'codes') {
    return (
      <Group>
        <Button onClick={() => setStage({ name: 'password' })}>Enable two-factor authentication</Button>
      </Group>
    );
  }

  if (stage.name === 'password') {
    return (
      <form
        onSubmit={(e: FormEvent) => {
          e.preventDefault();
          void setup.run();
        }}
        noValidate
      >
        <HiddenUsername />
        <Stack gap="sm" maw={480}>
          <FormError error={setup.error} />
          <PasswordField
            label="Confirm your password"
            autoComplete="current-password"
            required
            autoFocus
            value={password}
            onChange={(e) => setPassword(e.currentTarget.value)}
            error={setup.fieldErrors.password}
          />
          <Group>
            <Button type="submit" loading={setup.pending} disabled={!password}>
              Continue
            </Button>
            <Button variant="default" onClick={() => setStage({ name: 'idle' })}>
              Cancel
            </Button>
          </Group>
        </Stack>
      </form>
    );
  }

  return (
    <form
      onSubmit={(e: FormEvent) => {
        e.preventDefault();
        void confirm.run();
      }}
      noValidate
    >
      <Stack gap="sm">
        <Text size="sm">
          1. Scan this QR code with an authenticator app (for example Aegis, 2FAS, Google
          Authenticator or 1Password), or type the key in by hand.
        </Text>
        <Group align="flex-start" gap="lg">
          <QrImage uri={stage.uri} />
          <Stack gap={4}>
            <Text size="sm" fw={500} id="totp-secret-label">
              Key for manual entry
            </Text>
            <Code
              block
              data-testid="totp-secret"
              data-secret={stage.secret}
              aria-labelledby="totp-secret-label"
              fz="md"
            >
              {spaced(stage.secret)}
            </Code>
            <Text size="xs" c="dimmed">
              Time-based, 6 digits, every 30 seconds.
            </Text>
          </Stack>
        </Group>
        <Text size="sm">2. Enter the 6-digit code the app shows to finish.</Text>
        <FormError error={confirm.error} />
        <TextInput
          label="Code from the app"
          autoComplete="one-time-code"
          inputMode="numeric"
          required
          maw={240}
          value={code}
          onChange={(e) => setCode(e.currentTarget.value)}
          error={confirm.fieldErrors.code}
        />
        <Group>
          <Button type="submit" loading={confirm.pending} disabled={!code.trim()}>
            Confirm and turn on
          </Button>
          <Button variant="default" onClick={() => setStage({ name: 'idle' })}>
            Cancel
          </Button>
        </Group>
      </Stack>
    </form>
  );
}

function PasswordAndCodeForm({
  submitLabel,
  danger,
  onSubmit,
}: {
  submitLabel: string;
  danger?: boolean;
  onSubmit: (body: { password: string; code: string }) => Promise<unknown>;
}) {
  const [password, setPassword] = useState('');
  const [code, setCode] = useState('');
  const action = useSubmit(async () => {
    await onSubmit({ password, code: code.trim() });
    setPassword('');
    setCode('');
  });
  return (
    <form
      onSubmit={(e: FormEvent) => {
        e.preventDefault();
        void action.run();
      }}
      noValidate
    >
      <HiddenUsername />
      <Stack gap="sm" maw={480}>
        <FormError error={action.error} />
        <PasswordField
          label="Password"
          autoComplete="current-password"
          required
          value={password}
          onChange={(e) => setPassword(e.currentTarget.value)}
          error={action.fieldErrors.password}
        />
        <TextInput
          label="Authenticator or recovery code"
          autoComplete="one-time-code"
          required
          value={code}
          onChange={(e) => setCode(e.currentTarget.value)}
          error={action.fieldErrors.code}
        />
        <Group>
          <Button
            type="submit"
            color={danger ? 'red' : undefined}
            loading={action.pending}
            disabled={!password || !code.trim()}
          >
            {submitLabel}
          </Button>
        </Group>
      </Stack>
    </form>
  );
}

export function TwoFactorSection() {
  const user = useCurrentUser();
  const { refreshUser } = useAuth();
  const [codes, setCodes] = useState<string[] | null>(null);
  const [mode, setMode] = useState<'none' | 'disable' | 'regenerate'>('none');
  const [notice, setNotice] = useState<string | null>(null);

  return (
    <Section
      id="two-factor"
      title="Two-factor authentication"
      description="A code from an app on your phone, asked for at every sign-in."
    >
      <Group gap="xs">
        <Text size="sm">Status:</Text>
        <Badge color={user.totp_enabled ? 'green' : 'gray'} variant="light" data-testid="totp-status">
          {user.totp_enabled ? 'On' : 'Off'}
        </Badge>
      </Group>
      {notice ? (
        <Alert color="green" variant="light" role="status" withCloseButton onClose={() => setNotice(null)}>
          {notice}
        </Alert>
      ) : null}
      {codes ? (
        <RecoveryCodes codes={codes} onDone={() => setCodes(null)} />
      ) : !user.totp_enabled ? (
        <EnableTwoFactor
          onCodes={(fresh) => {
            setNotice('Two-factor authentication is on.');
            setCodes(fresh);
          }}
        />
      ) : (
        <Stack gap="sm">
          <Group>
            <Button
              variant={mode === 'regenerate' ? 'filled' : 'default'}
              onClick={() => setMode(mode === 'regenerate' ? 'none' : 'regenerate')}
              aria-expanded={mode === 'regenerate'}
            >
              New recovery codes
            </Button>
            <Button
              color="red"
              variant={mode === 'disable' ? 'filled' : 'light'}
              onClick={() => setMode(mode === 'disable' ? 'none' : 'disable')}
              aria-expanded={mode === 'disable'}
            >
              Turn off two-factor
            </Button>
          </Group>
          {mode === 'regenerate' ? (
            <PasswordAndCodeForm
              submitLabel="Make new recovery codes"
              onSubmit={async (body) => {
                const result = await newRecoveryCodes(body);
                setMode('none');
                setNotice('New recovery codes made; the old ones no longer work.');
                setCodes(result.recovery_codes);
              }}
            />
          ) : null}
          {mode === 'disable' ? (
            <PasswordAndCodeForm
              submitLabel="Turn off two-factor"
              danger
              onSubmit={async (body) => {
                await disableTotp(body);
                setMode('none');
                setNotice('Two-factor authentication is off.');
                await refreshUser();
              }}
            />
          ) : null}
        </Stack>
      )}
    </Section>
  );
}
