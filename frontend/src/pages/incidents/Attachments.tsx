import { useState } from 'react';
import { Anchor, Button, Card, Group, Image, Modal, Skeleton, Stack, Text, Title } from '@mantine/core';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import {
  deleteAttachment,
  incidentsKeys,
  listAttachments,
  uploadAttachment,
  type Attachment,
} from '../../api/incidents';
import { useCurrentUser } from '../../auth/AuthContext';
import { FormError } from '../../components/FormError';
import { displayName, formatBytes, formatDateTime } from '../../components/format';
import { Notice } from '../../components/Notice';
import { useSubmit } from '../../hooks/useSubmit';
import { FileDrop } from '../images/FileDrop';
import { formFieldErrors } from './filters';

/** How often the list is read again while an image's preview is being made. */
export const PREVIEW_POLL_MS = 2000;

/** Poll while a preview is on its way; stop once every preview is ready, failed or not made. */
export function previewPollInterval(items: readonly Pick<Attachment, 'preview'>[] | undefined): number | false {
  return items?.some((item) => item.preview === 'pending') ? PREVIEW_POLL_MS : false;
}

/** Who may remove an attachment: its uploader or an admin (service/attachments.py). */
export function canRemove(attachment: Pick<Attachment, 'uploader'>, me: { id: string; role: string }): boolean {
  return me.role === 'admin' || attachment.uploader?.id === me.id;
}

function PreviewOf({ attachment }: { attachment: Attachment }) {
  if (attachment.preview === 'ready' && attachment.preview_url) {
    return (
      <Image
        src={attachment.preview_url}
        alt={`Preview of ${attachment.name}`}
        w={96}
        h={96}
        fit="contain"
        radius="sm"
        data-testid="attachment-preview"
      />
    );
  }
  const word = attachment.preview === 'pending' ? 'Preview on its way…' : attachment.preview === 'failed' ? 'No preview' : null;
  return word ? (
    <Text size="xs" c="dimmed" w={96} ta="center">
      {word}
    </Text>
  ) : null;
}

/** Files of an incident: anybody who sees it attaches; images get a preview; uploader or admin removes. */
export function Attachments({ number }: { number: number }) {
  const me = useCurrentUser();
  const queryClient = useQueryClient();
  const [deleting, setDeleting] = useState<Attachment | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const list = useQuery({
    queryKey: incidentsKeys.attachments(number),
    queryFn: () => listAttachments(number),
    refetchInterval: (query) => previewPollInterval(query.state.data),
  });
  const refresh = () => queryClient.invalidateQueries({ queryKey: incidentsKeys.attachments(number) });
  const upload = useSubmit(async (files: File[]) => {
    setNotice(null);
    const names: string[] = [];
    for (const file of files) {
      const attachment = await uploadAttachment(number, file);
      names.push(attachment.name);
    }
    setNotice(`Attached ${names.join(', ')}.`);
    await refresh();
  });
  const remove = useSubmit(async (attachment: Attachment) => {
    await deleteAttachment(number, attachment.id);
    setDeleting(null);
    setNotice(`${attachment.name} was removed.`);
    await refresh();
  });
  const uploadError = formFieldErrors(upload.error).file ?? upload.error?.message ?? null;
  const items = list.data ?? [];

  return (
    <section aria-labelledby="attachments-title">
      <Title order={2} size="h4" id="attachments-title" mb="xs">
        Attachments
      </Title>
      <Stack gap="sm">
        <Notice notice={notice} onDismiss={() => setNotice(null)} />
        {list.isPending ? (
          <Skeleton height={60} aria-label="Loading the attachments" />
        ) : items.length ? (
          <Stack component="ul" gap="xs" p={0} m={0} style={{ listStyle: 'none' }} aria-labelledby="attachments-title" data-testid="attachments">
            {items.map((attachment) => (
              <Card component="li" key={attachment.id} withBorder radius="sm" padding="xs" data-testid="attachment">
                <Group gap="sm" wrap="nowrap" align="center">
                  <PreviewOf attachment={attachment} />
                  <Stack gap={2} style={{ flex: 1, minWidth: 0 }}>
                    <Anchor href={attachment.download_url} download={attachment.name} className="break-anywhere" size="sm">
                      {attachment.name}
                      <span className="visually-hidden"> (download)</span>
                    </Anchor>
                    <Text size="xs" c="dimmed">
                      {formatBytes(attachment.size)} · {attachment.content_type} ·{' '}
                      {attachment.uploader ? displayName(attachment.uploader) : 'Somebody'},{' '}
                      {formatDateTime(attachment.created_at)}
                    </Text>
                  </Stack>
                  {canRemove(attachment, me) ? (
                    <Button size="compact-xs" variant="subtle" color="red" onClick={() => setDeleting(attachment)}>
                      Remove <span className="visually-hidden">{attachment.name}</span>
                    </Button>
                  ) : null}
                </Group>
              </Card>
            ))}
          </Stack>
        ) : list.data ? (
          <Text size="sm" c="dimmed">
            No attachments.
          </Text>
        ) : (
          <FormError error={list.error} title="The attachments could not be loaded" />
        )}
        <FileDrop
          label="Choose files to attach"
          hint="Any file: logs, screenshots, exports. Images get a preview."
          accept=""
          multiple
          disabled={upload.pending}
          error={uploadError}
          onFiles={(files) => void upload.run(files)}
        />
      </Stack>
      <Modal opened={deleting !== null} onClose={() => setDeleting(null)} title="Remove attachment">
        <Stack gap="md">
          <FormError error={remove.error} />
          <Text size="sm" className="break-anywhere">
            Remove <strong>{deleting?.name}</strong> from this incident?
          </Text>
          <Group justify="flex-end">
            <Button variant="default" onClick={() => setDeleting(null)}>
              Cancel
            </Button>
            <Button color="red" loading={remove.pending} onClick={() => deleting && void remove.run(deleting)}>
              Remove attachment
            </Button>
          </Group>
        </Stack>
      </Modal>
    </section>
  );
}
