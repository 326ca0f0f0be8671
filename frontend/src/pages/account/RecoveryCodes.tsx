import { useEffect, useRef } from 'react';
import { Alert, Button, CopyButton, Group, List, Stack, Text } from '@mantine/core';

export function downloadText(filename: string, text: string): void {
  const url = URL.createObjectURL(new Blob([text], { type: 'text/plain;charset=utf-8' }));
  const link = document.createElement('a');
  link.href = url;
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** The recovery codes, shown once: the user copies or downloads them, then says so. */
export function RecoveryCodes({ codes, onDone }: { codes: string[]; onDone: () => void }) {
  const heading = useRef<HTMLDivElement>(null);
  useEffect(() => heading.current?.focus(), []);
  const text = `OpsDeck recovery codes (each works once)\n\n${codes.join('\n')}\n`;
  return (
    <Stack gap="sm">
      <Alert
        color="yellow"
        variant="light"
        title="Save your recovery codes now"
        ref={heading}
        tabIndex={-1}
        role="status"
      >
        If you lose your phone, each of these codes signs you in once. They will not be shown
        again: copy or download them and keep them somewhere safe.
      </Alert>
      <List
        className="recovery-codes"
        listStyleType="none"
        data-testid="recovery-codes"
        aria-label="Recovery codes"
        spacing={2}
      >
        {codes.map((code) => (
          <List.Item key={code}>
            <Text component="span" ff="monospace">
              {code}
            </Text>
          </List.Item>
        ))}
      </List>
      <Group>
        <CopyButton value={codes.join('\n')}>
          {({ copied, copy }) => (
            <Button variant="default" onClick={copy}>
              {copied ? 'Copied' : 'Copy codes'}
            </Button>
          )}
        </CopyButton>
        <Button variant="default" onClick={() => downloadText('opsdeck-recovery-codes.txt', text)}>
          Download
        </Button>
        <Button onClick={onDone}>I have saved them</Button>
      </Group>
    </Stack>
  );
}
