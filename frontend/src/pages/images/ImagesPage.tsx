import { Route, Routes, useParams } from 'react-router';
import { NotFoundPage } from '../NotFoundPage';
import BatchDetailPage from './BatchDetailPage';
import BatchListPage from './BatchListPage';
import NewBatchPage from './NewBatchPage';

function BatchDetailRoute() {
  const { requestId = '' } = useParams();
  // Keyed, so another batch starts from a clean slate instead of showing the previous one.
  return <BatchDetailPage key={requestId} requestId={requestId} />;
}

/** The Images module, under /images: batch list, new batch, batch detail. One lazy chunk. */
export default function ImagesPage() {
  return (
    <Routes>
      <Route index element={<BatchListPage />} />
      <Route path="new" element={<NewBatchPage />} />
      <Route path="batches/:requestId" element={<BatchDetailRoute />} />
      <Route path="*" element={<NotFoundPage />} />
    </Routes>
  );
}
