import { useEffect } from 'react';
import { Route, Routes, useParams, useSearchParams } from 'react-router';
import { useQueryClient, type QueryClient } from '@tanstack/react-query';
import { chatKeys, type Room, type RoomPage } from '../../api/chat';
import { claimSocket, connectSocket, onSocketConnect, onSocketEvent, socketRequest } from '../../api/socket';
import { useCurrentUser } from '../../auth/AuthContext';
import { RoomList } from './RoomList';
import { RoomView } from './RoomView';
import { SearchView } from './SearchView';
import { trackPresence } from './presence';
import { openRoomId, setOpenRoomId, roomsWithJoin, roomsWithMessage, roomsWithUnread, type JoinAck } from './rooms';
import './chat.css';

/** Subscribes this connection to every conversation the user is in, counting from each answer. */
function joinRooms(queryClient: QueryClient, items: Room[]): void {
  for (const room of items.filter((r) => r.member && !r.archived_at)) {
    socketRequest<JoinAck>('room:join', { room_id: room.id })
      .then((ack) =>
        queryClient.setQueryData<RoomPage>(chatKeys.rooms(), (page) => (page ? roomsWithJoin(page, ack) : page)),
      )
      .catch(() => undefined);
  }
}

function RoomRoute() {
  const { id = '' } = useParams();
  // Opened again at another message (`?seq=`): a new view, scrolled to it.
  const [params] = useSearchParams();
  return <RoomView key={`${id}:${params.get('seq') ?? ''}`} roomId={id} />;
}

/**
 * The chat: the conversation list on the left, the open room on the right. The page follows
 * every conversation the user is in over the shared socket, so the list's unread and mention
 * badges move live.
 */
export default function ChatPage() {
  const user = useCurrentUser();
  const queryClient = useQueryClient();

  useEffect(() => {
    claimSocket(user.id);
    const rooms = () => queryClient.getQueryData<RoomPage>(chatKeys.rooms())?.items ?? [];
    const joinAll = () => joinRooms(queryClient, rooms());
    const offs = [
      onSocketConnect(joinAll),
      trackPresence(),
      onSocketEvent<Parameters<typeof roomsWithMessage>[1]>('message:new', (message) => {
        queryClient.setQueryData<RoomPage>(chatKeys.rooms(), (page) =>
          page ? roomsWithMessage(page, message, user.id, openRoomId()) : page,
        );
      }),
      onSocketEvent<Parameters<typeof roomsWithUnread>[1]>('unread', (event) => {
        // A conversation the list does not have yet (someone added this user to it): read the
        // list again, so it appears.
        if (!rooms().some((room) => room.id === event.room_id && room.member)) {
          void queryClient.invalidateQueries({ queryKey: chatKeys.rooms() });
          return;
        }
        queryClient.setQueryData<RoomPage>(chatKeys.rooms(), (page) => (page ? roomsWithUnread(page, event) : page));
      }),
      onSocketEvent<{ room_id: string }>('room:removed', () => {
        void queryClient.invalidateQueries({ queryKey: chatKeys.rooms() });
      }),
    ];
    connectSocket().catch(() => undefined);
    return () => {
      for (const off of offs) off();
    };
  }, [queryClient, user.id]);

  return (
    <div className="chat-layout">
      <RoomList onLoaded={(items: Room[]) => joinRooms(queryClient, items)} />
      <Routes>
        <Route index element={<NoRoom />} />
        <Route path="rooms/:id" element={<RoomRoute />} />
        <Route path="search" element={<SearchView />} />
        <Route path="*" element={<NoRoom />} />
      </Routes>
    </div>
  );
}

function NoRoom() {
  useEffect(() => setOpenRoomId(null), []);
  return (
    <section className="chat-room" aria-labelledby="chat-empty-title">
      <h1 id="chat-empty-title" style={{ marginTop: 0 }}>
        Chat
      </h1>
      <p>Choose a conversation on the left, or start a new room.</p>
    </section>
  );
}
