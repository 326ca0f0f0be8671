import { useState, type FormEvent } from 'react';
import { Button, Group, Modal, Paper, Skeleton, Stack, Text, Textarea, Title } from '@mantine/core';
import { useInfiniteQuery, useQueryClient } from '@tanstack/react-query';
import {
  addComment,
  deleteComment,
  editComment,
  incidentsKeys,
  listComments,
  type Comment,
} from '../../api/incidents';
import { useCurrentUser } from '../../auth/AuthContext';
import { FormError } from '../../components/FormError';
import { displayName, formatDateTime } from '../../components/format';
import { useSubmit } from '../../hooks/useSubmit';
import { formFieldErrors } from './filters';
import { ServerHtml } from './Markdown';

function useRefresh(number: number) {
  const queryClient = useQueryClient();
  return () =>
    Promise.all([
      queryClient.invalidateQueries({ queryKey: incidentsKeys.comments(number) }),
      queryClient.invalidateQueries({ queryKey: incidentsKeys.timeline(number) }),
    ]);
}

function CommentItem({
  number,
  comment,
  mine,
  onDelete,
}: {
  number: number;
  comment: Comment;
  mine: boolean;
  onDelete: (comment: Comment) => void;
}) {
  const refresh = useRefresh(number);
  const [editing, setEditing] = useState(false);
  const [body, setBody] = useState(comment.body);
  const save = useSubmit(async () => {
    await editComment(number, comment.id, body);
    await refresh();
    setEditing(false);
  });
  const fields = formFieldErrors(save.error);
  const author = comment.author ? displayName(comment.author) : 'Somebody';

  function submit(event: FormEvent) {
    event.preventDefault();
    void save.run();
  }

  return (
    <Paper component="li" withBorder radius="sm" p="sm" data-testid="comment" data-deleted={comment.deleted || undefined}>
      <Group justify="space-between" align="flex-start" gap="xs" mb={4}>
        <Text size="sm">
          <Text span fw={600}>
            {author}
          </Text>{' '}
          <Text span size="xs" c="dimmed">
            {formatDateTime(comment.created_at)}
            {comment.edited_at && !comment.deleted ? ' · (edited)' : ''}
          </Text>
        </Text>
        {mine && !comment.deleted && !editing ? (
          <Group gap={4}>
            <Button
              size="compact-xs"
              variant="subtle"
              onClick={() => {
                setBody(comment.body);
                setEditing(true);
              }}
            >
              Edit <span className="visually-hidden">your comment of {formatDateTime(comment.created_at)}</span>
            </Button>
            <Button size="compact-xs" variant="subtle" color="red" onClick={() => onDelete(comment)}>
              Delete <span className="visually-hidden">your comment of {formatDateTime(comment.created_at)}</span>
            </Button>
          </Group>
        ) : null}
      </Group>
      {comment.deleted ? (
        <Text size="sm" c="dimmed" fs="italic">
          This comment was deleted.
        </Text>
      ) : editing ? (
        <form onSubmit={submit} noValidate>
          <Stack gap="xs">
            <FormError error={save.error && !fields.body ? save.error : null} />
            <Textarea
              label="Edit your comment"
              autosize
              minRows={2}
              value={body}
              onChange={(event) => setBody(event.currentTarget.value)}
              error={fields.body}
              data-autofocus
              autoFocus
            />
            <Group gap="xs" justify="flex-end">
              <Button size="xs" variant="default" onClick={() => setEditing(false)}>
                Cancel
              </Button>
              <Button size="xs" type="submit" loading={save.pending}>
                Save comment
              </Button>
            </Group>
          </Stack>
        </form>
      ) : (
        <ServerHtml html={comment.body_html} />
      )}
    </Paper>
  );
}

function CommentForm({ number }: { number: number }) {
  const refresh = useRefresh(number);
  const [body, setBody] = useState('');
  const add = useSubmit(async () => {
    await addComment(number, body);
    setBody('');
    await refresh();
  });
  const fields = formFieldErrors(add.error);
  function submit(event: FormEvent) {
    event.preventDefault();
    void add.run();
  }
  return (
    <form onSubmit={submit} noValidate>
      <Stack gap="xs">
        <FormError error={add.error && !fields.body ? add.error : null} />
        <Textarea
          label="Comment"
          description="Markdown"
          autosize
          minRows={3}
          value={body}
          onChange={(event) => setBody(event.currentTarget.value)}
          error={fields.body}
        />
        <Group justify="flex-end">
          <Button type="submit" size="xs" loading={add.pending}>
            Add comment
          </Button>
        </Group>
      </Stack>
    </form>
  );
}

/** The incident's comments, oldest first: add, edit or delete your own. */
export function Comments({ number }: { number: number }) {
  const me = useCurrentUser();
  const refresh = useRefresh(number);
  const [deleting, setDeleting] = useState<Comment | null>(null);
  const comments = useInfiniteQuery({
    queryKey: incidentsKeys.comments(number),
    queryFn: ({ pageParam }) => listComments(number, pageParam),
    initialPageParam: null as string | null,
    getNextPageParam: (last) => last.next_cursor,
  });
  const remove = useSubmit(async (comment: Comment) => {
    await deleteComment(number, comment.id);
    setDeleting(null);
    await refresh();
  });
  const items = comments.data?.pages.flatMap((page) => page.items) ?? [];

  return (
    <section aria-labelledby="comments-title">
      <Title order={2} size="h4" id="comments-title" mb="xs">
        Comments
      </Title>
      {comments.isPending ? (
        <Skeleton height={40} aria-label="Loading the comments" />
      ) : comments.isError && !comments.data ? (
        <FormError error={comments.error} title="The comments could not be loaded" />
      ) : items.length === 0 ? (
        <Text size="sm" c="dimmed">
          No comments yet.
        </Text>
      ) : (
        <Stack component="ol" gap="xs" p={0} m={0} style={{ listStyle: 'none' }} aria-labelledby="comments-title">
          {items.map((comment) => (
            <CommentItem
              key={comment.id}
              number={number}
              comment={comment}
              mine={comment.author?.id === me.id}
              onDelete={setDeleting}
            />
          ))}
        </Stack>
      )}
      {comments.hasNextPage ? (
        <Button
          mt="xs"
          size="xs"
          variant="default"
          onClick={() => void comments.fetchNextPage()}
          loading={comments.isFetchingNextPage}
        >
          Load more comments
        </Button>
      ) : null}
      <Stack mt="md">
        <CommentForm number={number} />
      </Stack>
      <Modal opened={deleting !== null} onClose={() => setDeleting(null)} title="Delete this comment?">
        <Stack gap="md">
          <FormError error={remove.error} />
          <Text size="sm">It stays in the thread as “This comment was deleted.”</Text>
          <Group justify="flex-end">
            <Button variant="default" onClick={() => setDeleting(null)}>
              Cancel
            </Button>
            <Button color="red" loading={remove.pending} onClick={() => deleting && void remove.run(deleting)}>
              Delete comment
            </Button>
          </Group>
        </Stack>
      </Modal>
    </section>
  );
}
