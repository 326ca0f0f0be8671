import { useRef, useState, type KeyboardEvent } from 'react';
import { ActionIcon, Button, CloseButton, FileButton, Group, Tabs, Text, Textarea } from '@mantine/core';
import { MESSAGE_LIMIT_BYTES, uploadAttachment, type Attachment } from '../../api/chat';
import { samePath } from '../../api/images';
import { MarkdownPreview } from './markdownPreview';
import { byteLength } from './timeline';

interface Props {
  roomId: string;
  label: string;
  disabled?: boolean;
  onSend: (body: string, attachmentIds: string[]) => void;
  onTyping: () => void;
  idPrefix: string;
}

/**
 * Writes a message: Enter or Ctrl/Cmd+Enter sends, Shift+Enter is a new line; "Preview" shows
 * the Markdown as it will read; files upload at once and go with the next send.
 */
export function Composer({ roomId, label, disabled, onSend, onTyping, idPrefix }: Props) {
  const [body, setBody] = useState('');
  const [tab, setTab] = useState<string | null>('write');
  const [files, setFiles] = useState<Attachment[]>([]);
  const [uploading, setUploading] = useState(0);
  const [error, setError] = useState<string | null>(null);
  const input = useRef<HTMLTextAreaElement>(null);
  const bytes = byteLength(body);
  const tooLong = bytes > MESSAGE_LIMIT_BYTES;

  function send() {
    const text = body.trim();
    if ((!text && files.length === 0) || tooLong || uploading > 0) return;
    onSend(text, files.map((f) => f.id));
    setBody('');
    setFiles([]);
    setTab('write');
    setError(null);
  }

  function keys(event: KeyboardEvent<HTMLTextAreaElement>) {
    if (event.key === 'Enter' && !event.shiftKey && !event.nativeEvent.isComposing) {
      event.preventDefault();
      send();
    }
  }

  async function upload(chosen: File[]) {
    setError(null);
    for (const file of chosen.slice(0, 10 - files.length)) {
      setUploading((n) => n + 1);
      try {
        const attachment = await uploadAttachment(roomId, file);
        setFiles((list) => [...list, attachment]);
      } catch (e) {
        setError(`${file.name}: ${(e as Error).message}`);
      } finally {
        setUploading((n) => n - 1);
      }
    }
  }

  return (
    <div>
      <Tabs value={tab} onChange={setTab} keepMounted={false}>
        <Tabs.List>
          <Tabs.Tab value="write" id={`${idPrefix}-write`}>
            Write
          </Tabs.Tab>
          <Tabs.Tab value="preview" id={`${idPrefix}-preview`} disabled={!body.trim()}>
            Preview
          </Tabs.Tab>
        </Tabs.List>
        <Tabs.Panel value="write" pt={6}>
          <Textarea
            ref={input}
            aria-label={label}
            placeholder={`${label} (Markdown; Enter sends, Shift+Enter for a new line)`}
            autosize
            minRows={2}
            maxRows={8}
            value={body}
            disabled={disabled}
            onChange={(e) => {
              setBody(e.currentTarget.value);
              if (e.currentTarget.value) onTyping();
            }}
            onKeyDown={keys}
            error={tooLong ? `Too long: ${bytes} of ${MESSAGE_LIMIT_BYTES} bytes` : undefined}
          />
        </Tabs.Panel>
        <Tabs.Panel value="preview" pt={6}>
          <div className="chat-preview chat-body" data-testid="composer-preview" aria-label="Preview">
            <MarkdownPreview text={body} />
          </div>
        </Tabs.Panel>
      </Tabs>
      {files.length || uploading ? (
        <Group gap="xs" mt={4} aria-label="Attached files" role="group">
          {files.map((file) => (
            <Group key={file.id} gap={4} wrap="nowrap">
              {file.preview_url ? <img className="chat-attachment-thumb" src={samePath(file.preview_url)} alt="" style={{ maxHeight: 40 }} /> : null}
              <Text size="xs">{file.filename}</Text>
              <CloseButton size="sm" aria-label={`Remove ${file.filename}`} onClick={() => setFiles((list) => list.filter((f) => f.id !== file.id))} />
            </Group>
          ))}
          {uploading ? <Text size="xs" c="dimmed">Uploading {uploading}…</Text> : null}
        </Group>
      ) : null}
      {error ? (
        <Text size="xs" c="red" role="alert" mt={4}>
          {error}
        </Text>
      ) : null}
      <Group justify="space-between" mt={6}>
        <FileButton onChange={(chosen) => void upload(chosen)} multiple>
          {(props) => (
            <ActionIcon {...props} variant="default" size="lg" aria-label="Attach files" disabled={disabled || files.length >= 10}>
              <span aria-hidden="true">📎</span>
            </ActionIcon>
          )}
        </FileButton>
        <Button size="sm" onClick={send} disabled={disabled || tooLong || uploading > 0 || (!body.trim() && files.length === 0)}>
          Send
        </Button>
      </Group>
    </div>
  );
}
