import { useState } from 'react';
import { Link, useNavigate } from 'react-router';
import { Button, Text } from '@mantine/core';
import { openWarRoom } from '../../api/chat';
import type { ApiError } from '../../api/errors';

/**
 * "A war-room link on every incident": opens the incident's chat room (the server makes it the
 * first time and adds the incident's people) and goes there; a link once it exists.
 */
export function WarRoomButton({ number, roomId }: { number: number; roomId: string | null }) {
  const navigate = useNavigate();
  const [pending, setPending] = useState(false);
  const [error, setError] = useState<string | null>(null);
  if (roomId) {
    return (
      <Button variant="default" size="xs" component={Link} to={`/chat/rooms/${roomId}`}>
        War room
      </Button>
    );
  }
  async function open() {
    setPending(true);
    setError(null);
    try {
      const room = await openWarRoom(number);
      navigate(`/chat/rooms/${room.id}`);
    } catch (e) {
      setError((e as ApiError).message);
      setPending(false);
    }
  }
  return (
    <>
      <Button variant="default" size="xs" loading={pending} onClick={() => void open()}>
        War room
      </Button>
      {error ? (
        <Text size="xs" c="red" role="alert">
          {error}
        </Text>
      ) : null}
    </>
  );
}
