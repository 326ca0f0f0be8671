import { memo, useState, type KeyboardEvent } from 'react';
import { ActionIcon, Anchor, Button, Group, Menu, Text, Textarea, Tooltip, UnstyledButton } from '@mantine/core';
import { QUICK_REACTIONS, type Message } from '../../api/chat';
import { samePath } from '../../api/images';
import { displayName, formatBytes, formatDateTime } from '../../components/format';
import { ServerHtml } from './ServerHtml';

export interface MessageActions {
  onReact: (message: Message, emoji: string) => void;
  onReply: (message: Message) => void;
  onEdit: (message: Message, body: string) => Promise<void>;
  onDelete: (message: Message) => void;
  /** Pins the message to its war room's incident timeline. */
  onPin: (message: Message) => void;
}

interface Props extends MessageActions {
  message: Message;
  userId: string;
  canModerate: boolean;
  replies: number;
  focused: boolean;
  /** The search hit or linked message: shown highlighted. */
  highlighted?: boolean;
  /** The room's incident (a war room): its messages can be pinned to the timeline. */
  incidentNumber?: number | null;
  inThread?: boolean;
  menuOpen: boolean;
  onMenuChange: (open: boolean) => void;
  onFocusItem: () => void;
}

function time(value: string): string {
  const date = new Date(value);
  return date.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
}

export const MessageItem = memo(function MessageItem(props: Props) {
  const { message, userId, canModerate, replies, focused, highlighted, incidentNumber, inThread, menuOpen, onMenuChange } = props;
  const [editing, setEditing] = useState(false);
  const [draft, setDraft] = useState(message.body);
  const [editError, setEditError] = useState<string | null>(null);
  const mine = message.author?.id === userId;
  const author = message.author ? displayName(message.author) : 'Deleted user';

  async function save() {
    try {
      await props.onEdit(message, draft);
      setEditing(false);
      setEditError(null);
    } catch (e) {
      setEditError((e as Error).message);
    }
  }

  function editKeys(event: KeyboardEvent<HTMLTextAreaElement>) {
    event.stopPropagation();
    if (event.key === 'Escape') {
      setEditing(false);
      setDraft(message.body);
    } else if (event.key === 'Enter' && !event.shiftKey) {
      event.preventDefault();
      void save();
    }
  }

  return (
    <div
      className={highlighted ? 'chat-message chat-message-highlight' : 'chat-message'}
      role="article"
      aria-current={highlighted ? 'true' : undefined}
      aria-label={`${author}, ${time(message.created_at)}`}
      tabIndex={focused ? 0 : -1}
      data-seq={message.seq}
      data-message-id={message.id}
      data-testid="chat-message"
      onFocus={(event) => event.target === event.currentTarget && props.onFocusItem()}
    >
      <Group gap="xs" justify="space-between" wrap="nowrap" align="flex-start">
        <div style={{ minWidth: 0, flex: 1 }}>
          <Group gap={6}>
            <Text fw={700} size="sm">
              {author}
            </Text>
            <Text size="xs" c="dimmed" component="time" dateTime={message.created_at} title={formatDateTime(message.created_at)}>
              {time(message.created_at)}
            </Text>
            {message.edited_at && !message.deleted ? (
              <Text size="xs" c="dimmed">
                (edited)
              </Text>
            ) : null}
            {message.pinned_to_incident ? (
              <Anchor size="xs" href={`/incidents/${message.pinned_to_incident.number}`}>
                pinned to INC-{message.pinned_to_incident.number}
              </Anchor>
            ) : null}
          </Group>
          {message.deleted ? (
            <Text size="sm" c="dimmed" fs="italic">
              This message was deleted.
            </Text>
          ) : editing ? (
            <div>
              <Textarea
                aria-label="Edit message"
                autosize
                minRows={1}
                value={draft}
                onChange={(e) => setDraft(e.currentTarget.value)}
                onKeyDown={editKeys}
                data-autofocus
                autoFocus
                error={editError}
              />
              <Group gap="xs" mt={4}>
                <Button size="xs" onClick={() => void save()}>
                  Save
                </Button>
                <Button size="xs" variant="default" onClick={() => setEditing(false)}>
                  Cancel
                </Button>
              </Group>
            </div>
          ) : (
            <ServerHtml html={message.body_html} testId="chat-message-body" />
          )}
          {message.attachments?.length && !message.deleted ? (
            <Group gap="xs" mt={4}>
              {message.attachments.map((file) => (
                <Anchor key={file.id} href={samePath(file.url)} target="_blank" rel="noopener" size="sm">
                  {file.preview_url && file.status === 'ready' ? (
                    <img className="chat-attachment-thumb" src={samePath(file.preview_url)} alt={file.filename} />
                  ) : (
                    `${file.filename} (${formatBytes(file.size)})`
                  )}
                </Anchor>
              ))}
            </Group>
          ) : null}
          {message.reactions?.length && !message.deleted ? (
            <Group gap={4} mt={4} role="group" aria-label="Reactions">
              {message.reactions.map((reaction) => {
                const pressed = reaction.user_ids.includes(userId);
                return (
                  <Button
                    key={reaction.emoji}
                    size="compact-xs"
                    variant={pressed ? 'light' : 'default'}
                    aria-pressed={pressed}
                    aria-label={`${reaction.emoji} ${reaction.count}`}
                    onClick={() => props.onReact(message, reaction.emoji)}
                  >
                    {reaction.emoji} {reaction.count}
                  </Button>
                );
              })}
            </Group>
          ) : null}
          {!inThread && replies > 0 ? (
            <UnstyledButton onClick={() => props.onReply(message)} mt={2}>
              <Text size="xs" c="blue" fw={600} component="span">
                {replies} {replies === 1 ? 'reply' : 'replies'}
              </Text>
            </UnstyledButton>
          ) : null}
        </div>
        {!message.deleted ? (
          <Menu opened={menuOpen} onChange={onMenuChange} position="bottom-end" withinPortal>
            <Menu.Target>
              <Tooltip label="Message actions" openDelay={400}>
                <ActionIcon variant="subtle" color="gray" size="sm" aria-label="Message actions" tabIndex={focused ? 0 : -1}>
                  <span aria-hidden="true">⋯</span>
                </ActionIcon>
              </Tooltip>
            </Menu.Target>
            <Menu.Dropdown>
              <Menu.Label>React</Menu.Label>
              <Group gap={2} px={6} pb={4}>
                {QUICK_REACTIONS.map((emoji) => (
                  <Menu.Item key={emoji} p={4} w="auto" aria-label={`React with ${emoji}`} onClick={() => props.onReact(message, emoji)}>
                    {emoji}
                  </Menu.Item>
                ))}
              </Group>
              {!inThread ? <Menu.Item onClick={() => props.onReply(message)}>Reply in thread</Menu.Item> : null}
              {mine ? (
                <Menu.Item
                  onClick={() => {
                    setDraft(message.body);
                    setEditing(true);
                  }}
                >
                  Edit
                </Menu.Item>
              ) : null}
              {incidentNumber && !message.pinned_to_incident ? (
                <Menu.Item onClick={() => props.onPin(message)}>Pin to INC-{incidentNumber} timeline</Menu.Item>
              ) : null}
              {mine || canModerate ? (
                <Menu.Item onClick={() => props.onDelete(message)}>
                  Delete
                </Menu.Item>
              ) : null}
            </Menu.Dropdown>
          </Menu>
        ) : null}
      </Group>
    </div>
  );
});
